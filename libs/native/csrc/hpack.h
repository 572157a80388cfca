/* The header-block rewriter for gRPC-Go's `:authority` (hpack.c): adds authorityRewriterOpen and authorityRewrite to `exports`. */
#ifndef BERTH_HPACK_H
#define BERTH_HPACK_H
#include <node_api.h>
#include <stdbool.h>

bool hpack_register(napi_env env, napi_value exports);
#endif
