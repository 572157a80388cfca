/* Argument checks shared by the bindings (berth_native.c, layer.c): Node-style TypeErrors and RangeErrors. */
#include <node_api.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

bool throw_type(napi_env env, const char *code, const char *what, const char *expected) {
  char text[160];
  snprintf(text, sizeof text, "The \"%s\" argument must be %s", what, expected);
  napi_throw_type_error(env, code, text);
  return false;
}

/* Reads a JS string argument into a malloc'd, NUL-terminated UTF-8 buffer.
 * Rejects non-strings and strings with embedded NUL bytes (TypeError). */
bool get_cstring(napi_env env, napi_value v, const char *what, char **out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t != napi_string) return throw_type(env, "ERR_INVALID_ARG_TYPE", what, "of type string");
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return false;
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, buf, len + 1, &copied) != napi_ok) {
    free(buf);
    return false;
  }
  if (copied != len || memchr(buf, '\0', len) != NULL) {
    free(buf);
    return throw_type(env, "ERR_INVALID_ARG_VALUE", what, "a string without null bytes");
  }
  *out = buf;
  return true;
}

/* Reads an integer argument in [0, max]. TypeError for a non-number,
 * RangeError for a fraction, NaN, negative or too large value. */
bool get_uint(napi_env env, napi_value v, const char *what, double max, unsigned int *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t != napi_number) return throw_type(env, "ERR_INVALID_ARG_TYPE", what, "of type number");
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= max) || floor(d) != d) {
    char text[160];
    snprintf(text, sizeof text, "The value of \"%s\" is out of range. It must be an integer >= 0 and <= %.0f", what, max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", text);
    return false;
  }
  *out = (unsigned int)d;
  return true;
}

/* Fetches exactly `want` arguments (missing ones read as undefined and so
 * fail the type checks). */
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok;
}

/* The pointer of an external tagged `tag` (napi_type_tag_object);
 * TypeError "must be <what>" for anything else, another kind of handle included. */
void *get_tagged_external(napi_env env, napi_value v, const napi_type_tag *tag, const char *what) {
  bool tagged = false;
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, tag, &tagged) != napi_ok ||
      !tagged || napi_get_value_external(env, v, &p) != napi_ok) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "handle", what);
    return NULL;
  }
  return p;
}


bool export_functions(napi_env env, napi_value exports, const export_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok)
      return false;
  }
  return true;
}
