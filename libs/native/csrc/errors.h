/* Node-style system errors (berth_native.c), for every binding file. */
#ifndef BERTH_ERRORS_H
#define BERTH_ERRORS_H
#include <node_api.h>

/* The errno's name as Node's fs errors give it, e.g. "ENOENT". */
const char *errno_code(int err);
/* Throws an Error like Node's fs errors: "<CODE>: <message>, <syscall> '<path>'", with code, errno, syscall and path. */
void throw_errno(napi_env env, int err, const char *syscall, napi_value path_value, const char *path);
#endif
