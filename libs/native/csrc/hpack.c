/*
 * Re-encoding HTTP/2 header blocks so that Node's HTTP/2 server accepts the
 * `:authority` gRPC-Go clients send on a unix socket.
 *
 * gRPC-Go, as the kubelet up to 1.30 and crictl build it, dials the socket
 * path and sends that path (`/run/berth/berth.sock`) as `:authority`.
 * nghttp2 refuses an authority with `/` in it (RFC 3986 allows no `/` there)
 * and resets the stream before any JS runs, and Node has no switch for it.
 * So the CRI socket's connections can pass through a relay
 * (libs/rpc/src/authority-relay.ts) that hands every header block the
 * client sends to a rewriter here: the block is decoded with the client's
 * HPACK state (an inflater), an `:authority` that nghttp2 would refuse is
 * replaced, and the fields are encoded again with a state of the relay's own
 * (a deflater) that the server's decoder then follows. Every other field,
 * its order and its never-index flag are kept; nothing else is checked less.
 *
 * The nghttp2 used is the one the process already has (Node exports its
 * symbols; libnghttp2 is linked for the headers' sake), so the authority
 * check is the very one the server applies.
 *
 * Header blocks are hostile input: a small block can name large table
 * entries many times, so the decoded list is capped in bytes and fields.
 *
 * JS side (libs/native/src/index.ts wraps it):
 *   authorityRewriterOpen(replacement) -> handle
 *   authorityRewrite(handle, block) -> [encoded: Buffer, replaced: boolean]
 */
#include <node_api.h>

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "hpack.h"

/* The most a decoded header list may hold; more is refused as a compression bomb. */
#define MAX_LIST_BYTES (256 * 1024)
#define MAX_FIELDS 1024
/* The server's decoder starts with (and Node keeps) HPACK's default table size. */
#define TABLE_SIZE 4096

static const napi_type_tag rewriter_tag = {0x6265727468687061ULL, 0x636b617574686f72ULL};

/* A decoded field: offsets into the list's byte buffer (it may move while it grows). */
typedef struct {
  size_t name, namelen, value, valuelen;
  uint8_t flags;
} field;

/* One block's decoded fields; kept by the rewriter and reused from block to block. */
typedef struct {
  uint8_t *bytes;
  size_t used, cap;
  field fields[MAX_FIELDS];
  size_t count;
} field_list;

typedef struct {
  nghttp2_hd_inflater *inflater;
  nghttp2_hd_deflater *deflater;
  char *replacement;
  field_list list;
} rewriter;

static void rewriter_free(napi_env env, void *data, void *hint) {
  rewriter *rw = data;
  nghttp2_hd_inflate_del(rw->inflater);
  nghttp2_hd_deflate_del(rw->deflater);
  free(rw->replacement);
  free(rw->list.bytes);
  free(rw);
}

static rewriter *get_rewriter(napi_env env, napi_value v) {
  return get_tagged_external(env, v, &rewriter_tag, "an authority rewriter");
}

/* authorityRewriterOpen(replacement: string): a rewriter with fresh HPACK states on both sides. */
static napi_value AuthorityRewriterOpen(napi_env env, napi_callback_info info) {
  napi_value argv[1], handle;
  if (!get_args(env, info, 1, argv)) return NULL;
  rewriter *rw = calloc(1, sizeof *rw);
  if (rw == NULL) {
    napi_throw_error(env, "ENOMEM", "cannot allocate an authority rewriter");
    return NULL;
  }
  if (!get_cstring(env, argv[0], "replacement", &rw->replacement)) {
    free(rw);
    return NULL;
  }
  if (nghttp2_hd_inflate_new(&rw->inflater) != 0 || nghttp2_hd_deflate_new(&rw->deflater, TABLE_SIZE) != 0) {
    rewriter_free(env, rw, NULL);
    napi_throw_error(env, "ENOMEM", "cannot allocate HPACK states");
    return NULL;
  }
  if (napi_create_external(env, rw, rewriter_free, NULL, &handle) != napi_ok) {
    rewriter_free(env, rw, NULL);
    return NULL;
  }
  if (napi_type_tag_object(env, handle, &rewriter_tag) != napi_ok) return NULL;
  return handle;
}

static bool append(field_list *list, const uint8_t *data, size_t len, size_t *at) {
  if (list->used + len > MAX_LIST_BYTES) return false;
  if (list->used + len > list->cap) {
    size_t cap = list->cap ? list->cap : 1024;
    while (cap < list->used + len) cap *= 2;
    uint8_t *grown = realloc(list->bytes, cap);
    if (grown == NULL) return false;
    list->bytes = grown;
    list->cap = cap;
  }
  memcpy(list->bytes + list->used, data, len);
  *at = list->used;
  list->used += len;
  return true;
}

/* Keeps one decoded field, its authority replaced when nghttp2 would refuse it. */
static const char *keep_field(field_list *list, const nghttp2_nv *nv, const char *replacement, bool *replaced) {
  if (list->count == MAX_FIELDS) return "the header block has too many fields";
  field *f = &list->fields[list->count];
  const uint8_t *value = nv->value;
  size_t valuelen = nv->valuelen;
  if (nv->namelen == 10 && memcmp(nv->name, ":authority", 10) == 0 && !nghttp2_check_authority(nv->value, nv->valuelen)) {
    value = (const uint8_t *)replacement;
    valuelen = strlen(replacement);
    *replaced = true;
  }
  if (!append(list, nv->name, nv->namelen, &f->name) || !append(list, value, valuelen, &f->value))
    return "the decoded header block is too large";
  f->namelen = nv->namelen;
  f->valuelen = valuelen;
  f->flags = nv->flags & NGHTTP2_NV_FLAG_NO_INDEX;
  list->count++;
  return NULL;
}

/* Decodes a whole header block into `list`; an error message, or NULL. */
static const char *decode_block(rewriter *rw, const uint8_t *in, size_t len, field_list *list, bool *replaced) {
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t n = nghttp2_hd_inflate_hd2(rw->inflater, &nv, &flags, in, len, 1);
    if (n < 0) return "the header block does not decode (HPACK compression error)";
    in += n;
    len -= (size_t)n;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      const char *err = keep_field(list, &nv, rw->replacement, replaced);
      if (err != NULL) return err;
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(rw->inflater);
      return NULL;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && len == 0) return "the header block ends inside a field";
  }
}

/* Encodes `list` with the rewriter's own state into a new Buffer. */
static napi_value encode_block(napi_env env, rewriter *rw, field_list *list) {
  nghttp2_nv *nva = calloc(list->count ? list->count : 1, sizeof *nva);
  if (nva == NULL) {
    napi_throw_error(env, "ENOMEM", "cannot encode the header block");
    return NULL;
  }
  for (size_t i = 0; i < list->count; i++) {
    const field *f = &list->fields[i];
    nva[i] = (nghttp2_nv){list->bytes + f->name, list->bytes + f->value, f->namelen, f->valuelen, f->flags};
  }
  size_t bound = nghttp2_hd_deflate_bound(rw->deflater, nva, list->count);
  void *out = NULL;
  napi_value buffer = NULL;
  if (napi_create_buffer(env, bound, &out, &buffer) == napi_ok) {
    ssize_t n = nghttp2_hd_deflate_hd(rw->deflater, out, bound, nva, list->count);
    if (n < 0) {
      napi_throw_error(env, "EPROTO", "cannot encode the header block");
      buffer = NULL;
    } else if (napi_create_buffer_copy(env, (size_t)n, out, NULL, &buffer) != napi_ok) {
      buffer = NULL;
    }
  }
  free(nva);
  return buffer;
}

/*
 * authorityRewrite(handle, block: Uint8Array): the block (one whole header
 * block: the HEADERS fragment and its CONTINUATIONs joined, without padding
 * or priority) encoded again, and whether its authority was replaced. A
 * block that does not decode, or decodes too large, throws an Error with
 * code 'EPROTO'; the connection cannot go on after that (the client's HPACK
 * state is lost), as with nghttp2's own COMPRESSION_ERROR.
 */
static napi_value AuthorityRewrite(napi_env env, napi_callback_info info) {
  napi_value argv[2], result, encoded, flag;
  if (!get_args(env, info, 2, argv)) return NULL;
  rewriter *rw = get_rewriter(env, argv[0]);
  if (rw == NULL) return NULL;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "block", "a Uint8Array");
    return NULL;
  }
  field_list *list = &rw->list;
  list->used = 0;
  list->count = 0;
  bool replaced = false;
  const char *err = decode_block(rw, data, len, list, &replaced);
  encoded = err == NULL ? encode_block(env, rw, list) : NULL;
  if (err != NULL) {
    napi_throw_error(env, "EPROTO", err);
    return NULL;
  }
  if (encoded == NULL) return NULL;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok || napi_get_boolean(env, replaced, &flag) != napi_ok ||
      napi_set_element(env, result, 0, encoded) != napi_ok || napi_set_element(env, result, 1, flag) != napi_ok)
    return NULL;
  return result;
}

bool hpack_register(napi_env env, napi_value exports) {
  static const export_fn fns[] = {{"authorityRewriterOpen", AuthorityRewriterOpen}, {"authorityRewrite", AuthorityRewrite}};
  return export_functions(env, exports, fns, sizeof fns / sizeof fns[0]);
}
