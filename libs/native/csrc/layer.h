/* The native layer applier (layer.c): adds applierOpen, applierPush and applierAbort to `exports`. */
#ifndef BERTH_LAYER_H
#define BERTH_LAYER_H
#include <node_api.h>
#include <stdbool.h>
bool layer_register(napi_env env, napi_value exports);
#endif
