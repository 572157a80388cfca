/* Argument checks shared by the bindings: each returns false with a JS exception pending. */
#ifndef BERTH_ARGS_H
#define BERTH_ARGS_H
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>

/* Throws TypeError `code`: The "<what>" argument must be <expected>. */
bool throw_type(napi_env env, const char *code, const char *what, const char *expected);
/* A string argument as a malloc'd UTF-8 C string; TypeError for a non-string or one with NUL bytes. */
bool get_cstring(napi_env env, napi_value v, const char *what, char **out);
/* An integer argument in [0, max]; TypeError for a non-number, RangeError otherwise. */
bool get_uint(napi_env env, napi_value v, const char *what, double max, unsigned int *out);
/* Exactly `want` arguments (missing ones read as undefined and so fail the type checks). */
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
/* The pointer inside an external tagged `tag`; TypeError "The "handle" argument must be <what>" otherwise. */
void *get_tagged_external(napi_env env, napi_value v, const napi_type_tag *tag, const char *what);
/* A binding's function under its JS name. */
typedef struct {
  const char *name;
  napi_callback cb;
} export_fn;
/* Sets each of the `n` functions on `exports`; false with an exception pending if one could not be. */
bool export_functions(napi_env env, napi_value exports, const export_fn *fns, size_t n);
#endif
