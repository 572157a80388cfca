/*
 * Applying an image layer to a directory, natively: the layer's bytes come
 * from JS in chunks, and a thread of the applier's own decompresses them
 * (zlib for gzip, libzstd for zstd), hashes the uncompressed tar (the diff
 * ID, with the OpenSSL inside Node), and extracts it with libarchive into the
 * upper directory of an overlay snapshot.
 *
 * Layers are hostile input. Before libarchive sees an entry, its name is
 * cleaned here (no `..`, absolute names land under the root), its parent
 * directories are walked from the root with O_NOFOLLOW (so nothing is
 * written through a symlink, even one the layer made itself), whatever
 * stands in its place is removed, and a hard link must name an existing
 * non-directory of this layer. libarchive then writes it with its own
 * symlink and `..` checks on as a second line. OCI whiteouts become overlay
 * whiteouts (`.wh.x` -> a 0/0 character device, `.wh..wh..opq` -> the
 * trusted.overlay.opaque xattr); a layer's own trusted.overlay.* xattrs are
 * dropped, as they would steer overlayfs. The uncompressed size is capped.
 *
 * Where the tar may end is Go's archive/tar's rule, the one containerd,
 * CRI-O and Docker apply, not libarchive's: see "end of the input" below.
 *
 * The thread is the applier's own, not one of libuv's pool: libarchive pulls
 * its input, so the thread waits for JS between chunks, and four such waits
 * would fill the pool that the file reads feeding them need.
 *
 * JS side (libs/native/src/index.ts wraps it):
 *   applierOpen(root, compression 0|1|2, maxBytes, onEvent) -> handle
 *   applierPush(handle, chunks | null)  one batch waiting at most; null ends input
 *   applierAbort(handle)
 *   onEvent(0)                          the pushed batch was taken (the one before is done with)
 *   onEvent(1, diffIdHex, bytes)        the layer is applied
 *   onEvent(2, message, 0, content, code) it failed (content: the layer's fault;
 *                                       code: the errno's name, when the node failed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "args.h"
#include "errors.h"
#include "layer.h"

enum { COMPRESSION_NONE = 0, COMPRESSION_GZIP = 1, COMPRESSION_ZSTD = 2 };
enum { EVENT_TAKEN = 0, EVENT_DONE = 1, EVENT_FAILED = 2 };

/* Decompressed bytes handed to libarchive per read. */
#define OUT_BYTES (1024 * 1024)
/* zstd frames asking for a window over 2^28 (256 MiB) are refused. */
#define ZSTD_WINDOW_LOG_MAX 28

/* The applier's end, for JS: made when the applier is, so reporting it cannot fail for want of memory. */
typedef struct {
  int kind;
  char text[512];
  double bytes;
  bool content;
  const char *code; /* the errno's name, for a failure the node caused; NULL otherwise */
} event;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs;          /* the JS handle and the thread */
  bool aborted;      /* JS gave up, or the handle was collected */
  struct iovec *pending; /* the batch pushed and not yet taken: JS's own memory, which JS keeps alive */
  size_t pending_n;
  bool has_pending;
  bool input_ended;  /* JS pushed null */

  /* Thread-only from here. */
  napi_threadsafe_function tsfn;
  char *root;
  int rootfd;
  int compression;
  double max_bytes;
  struct iovec *batch; /* the batch being applied, and which piece of it */
  size_t batch_n, batch_i;
  const uint8_t *in;
  size_t in_len, in_pos;
  bool eof;
  z_stream z;
  bool z_ready, z_member_done;
  ZSTD_DCtx *zstd;
  size_t zstd_last;
  bool started, out_full;
  uint8_t *out;
  /* Bytes made (hashed) and not yet handed to libarchive: the rest of a run a skip ended inside. */
  const uint8_t *run;
  size_t run_len;
  /* The offset in the tar libarchive has been given bytes up to (or skipped to); see "end of the input". */
  uint64_t fed;
  bool in_data;      /* inside archive_read_data_block */
  bool padded;       /* the input ended inside the last entry's padding, and the rest was made up */
  struct archive *reader; /* libarchive's reader of the tar */
  EVP_MD_CTX *hash;
  double bytes;
  /* The first failure wins; `content` says the layer caused it. */
  char err[512];
  int err_errno;
  bool err_content;
  bool failed;
  /* The last parent directory walked, kept open while nothing is removed. */
  char *cached_dir;
  int cached_fd;
  event *final;
} applier;

static void fail(applier *ap, int err, bool content, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(applier *ap, int err, bool content, const char *fmt, ...) {
  if (ap->failed) return;
  ap->failed = true;
  ap->err_errno = err;
  ap->err_content = content;
  va_list args;
  va_start(args, fmt);
  vsnprintf(ap->err, sizeof ap->err, fmt, args);
  va_end(args);
}

/* Tells JS a batch was taken (no event record: NULL stands for it). */
static void post_taken(applier *ap) {
  napi_call_threadsafe_function(ap->tsfn, NULL, napi_tsfn_blocking);
}

/* Tells JS the applier has ended, with its result or failure; once. */
static void post_end(applier *ap, int kind, const char *text, double bytes, int err, bool content) {
  event *ev = ap->final;
  ap->final = NULL;
  ev->kind = kind;
  snprintf(ev->text, sizeof ev->text, "%s", text);
  ev->bytes = bytes;
  ev->content = content;
  ev->code = err != 0 ? errno_code(err) : NULL;
  if (napi_call_threadsafe_function(ap->tsfn, ev, napi_tsfn_blocking) != napi_ok) free(ev);
}

static void unref(applier *ap) {
  pthread_mutex_lock(&ap->lock);
  bool last = --ap->refs == 0;
  pthread_mutex_unlock(&ap->lock);
  if (!last) return;
  free(ap->pending);
  free(ap->final);
  pthread_mutex_destroy(&ap->lock);
  pthread_cond_destroy(&ap->cond);
  free(ap);
}

/* ------------------------------------------------------------- input side */

/*
 * Moves to the next piece of input, waiting for JS's next batch when this
 * one is used up; false at the end of the input or on abort. Taking a batch
 * tells JS it may let go of the one before.
 */
static bool next_chunk(applier *ap) {
  ap->in = NULL;
  ap->in_len = ap->in_pos = 0;
  if (ap->batch != NULL && ++ap->batch_i < ap->batch_n) {
    ap->in = ap->batch[ap->batch_i].iov_base;
    ap->in_len = ap->batch[ap->batch_i].iov_len;
    return true;
  }
  free(ap->batch);
  ap->batch = NULL;
  pthread_mutex_lock(&ap->lock);
  while (!ap->has_pending && !ap->input_ended && !ap->aborted) pthread_cond_wait(&ap->cond, &ap->lock);
  bool aborted = ap->aborted, got = ap->has_pending;
  if (got) {
    ap->batch = ap->pending;
    ap->batch_n = ap->pending_n;
    ap->batch_i = 0;
    ap->in = ap->batch[0].iov_base;
    ap->in_len = ap->batch[0].iov_len;
    ap->pending = NULL;
    ap->has_pending = false;
  }
  pthread_mutex_unlock(&ap->lock);
  if (aborted) {
    fail(ap, ECANCELED, false, "layer apply was cancelled");
    return false;
  }
  if (got) post_taken(ap);
  return got;
}

/* Counts and hashes `n` uncompressed bytes; false past the cap. */
static bool account(applier *ap, const uint8_t *data, size_t n) {
  ap->bytes += (double)n;
  if (ap->bytes > ap->max_bytes) {
    fail(ap, 0, true, "layer decompresses to more than %.0f bytes; refusing it", ap->max_bytes);
    return false;
  }
  EVP_DigestUpdate(ap->hash, data, n);
  return true;
}

/* Runs the decompressor once over what input is left (maybe none, to drain it); returns the bytes made, -1 on failure. */
static ssize_t decompress(applier *ap) {
  const uint8_t *in = ap->in + ap->in_pos;
  size_t avail = ap->in_len - ap->in_pos;
  size_t made = 0;
  if (avail > 0) ap->started = true;
  if (ap->compression == COMPRESSION_GZIP) {
    if (ap->z_member_done) {
      if (avail == 0) return 0;
      /* Another gzip member follows (RFC 1952 allows several). */
      inflateReset(&ap->z);
      ap->z_member_done = false;
    }
    ap->z.next_in = (Bytef *)in;
    ap->z.avail_in = avail > UINT_MAX ? UINT_MAX : (uInt)avail;
    ap->z.next_out = ap->out;
    ap->z.avail_out = OUT_BYTES;
    int rc = inflate(&ap->z, Z_NO_FLUSH);
    ap->in_pos += (size_t)(ap->z.next_in - in);
    made = OUT_BYTES - ap->z.avail_out;
    if (rc == Z_STREAM_END) ap->z_member_done = true;
    else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      fail(ap, 0, true, "gzip layer does not decompress: %s", ap->z.msg != NULL ? ap->z.msg : "corrupt data");
      return -1;
    }
  } else {
    ZSTD_inBuffer zin = {in, avail, 0};
    ZSTD_outBuffer zout = {ap->out, OUT_BYTES, 0};
    size_t rc = ZSTD_decompressStream(ap->zstd, &zout, &zin);
    if (ZSTD_isError(rc)) {
      fail(ap, 0, true, "zstd layer does not decompress: %s", ZSTD_getErrorName(rc));
      return -1;
    }
    ap->zstd_last = rc;
    ap->in_pos += zin.pos;
    made = zout.pos;
  }
  /* A full buffer may leave output inside the decompressor: drain it before asking for input. */
  ap->out_full = made == OUT_BYTES;
  return (ssize_t)made;
}

/*
 * The next run of uncompressed bytes: *out points at them; 0 at the end of
 * the layer, -1 on failure (recorded in ap).
 */
static ssize_t produce(applier *ap, const void **out) {
  for (;;) {
    if (ap->failed) return -1;
    bool have_input = ap->in_pos < ap->in_len;
    if (ap->compression == COMPRESSION_NONE && have_input) {
      size_t avail = ap->in_len - ap->in_pos;
      *out = ap->in + ap->in_pos;
      ap->in_pos = ap->in_len;
      if (!account(ap, *out, avail)) return -1;
      return (ssize_t)avail;
    }
    if (ap->compression != COMPRESSION_NONE && (have_input || ap->out_full)) {
      ssize_t made = decompress(ap);
      if (made < 0) return -1;
      if (made > 0) {
        if (!account(ap, ap->out, (size_t)made)) return -1;
        *out = ap->out;
        return made;
      }
      if (ap->in_pos < ap->in_len) continue;
      ap->out_full = false;
    }
    if (!ap->eof) {
      if (!next_chunk(ap)) {
        if (ap->failed) return -1;
        ap->eof = true;
      }
      continue;
    }
    /* The input ended: so must the compressed stream, or the layer is cut short. */
    if (ap->compression == COMPRESSION_GZIP && !ap->z_member_done) {
      fail(ap, 0, true, "gzip layer is truncated");
      return -1;
    }
    if (ap->compression == COMPRESSION_ZSTD && (!ap->started || ap->zstd_last != 0)) {
      fail(ap, 0, true, "zstd layer is truncated");
      return -1;
    }
    return 0;
  }
}

/*
 * The end of the input. The tar may stop wherever Go's archive/tar
 * (src/archive/tar/reader.go) ends an archive without an error:
 *  - where a header would begin (Next: io.EOF after 0 bytes of a header);
 *  - right after an entry's data, or partway through the padding that
 *    rounds it to 512 bytes: Next reads that padding with tryReadFull, and
 *    io.EOF there is the end of the archive. Some image tools (umoci 0.4.7)
 *    end every layer like that;
 *  - after one zero block, or two and anything after them.
 * Go fails (io.ErrUnexpectedEOF or ErrHeader), and so does Berth, when it
 * ends inside an entry's data, inside a header (an extended header's body
 * included) or inside the second zero block, or when one zero block is
 * followed by anything but another.
 *
 * libarchive ends at a header's start, and at one zero block, as Go does;
 * the rest is made up here. libarchive reads headers, extended headers and
 * data with read-aheads (read_cb), and consumes an entry's padding with a
 * skip (skip_cb) once its data is read; the applier reads every entry's
 * data to the end and never asks libarchive to skip it. So a skip inside
 * archive_read_data_block that runs past the end of the input is the
 * padding after the entry's last data byte (libarchive 3.6's read_data
 * skips nothing else): the entry is complete, and skip_cb reports the
 * missing bytes as skipped. That is all that is made up, and only ever as
 * skipped bytes, whose content libarchive never sees: nothing made up
 * reaches a file or the hash. libarchive then reads the next header and
 * finds the end of the input where it begins. The end of the input inside
 * data or a header reaches a read-ahead, and libarchive fails as before.
 * As a second guard the bytes made up must be fewer than 512 and end on a
 * block boundary. After a zero block, what libarchive accepts and Go does
 * not is refused in extract(), from where libarchive's header read began
 * and ended.
 */

/* Hands libarchive the next run of uncompressed bytes; 0 at the end of the input. */
static la_ssize_t read_cb(struct archive *a, void *p, const void **buf) {
  applier *ap = p;
  if (ap->run_len == 0) {
    const void *run;
    ssize_t n = produce(ap, &run);
    if (n < 0) {
      archive_set_error(a, ap->err_errno != 0 ? ap->err_errno : EINVAL, "%s", ap->err);
      return -1;
    }
    ap->run = run;
    ap->run_len = (size_t)n;
  }
  ssize_t n = (ssize_t)ap->run_len;
  *buf = ap->run;
  ap->fed += ap->run_len;
  ap->run_len = 0;
  return n;
}

/*
 * Skips `request` bytes for libarchive (they are still decompressed and
 * hashed); returns how many. Short at the end of the input, save for the
 * last entry's padding (above), or on failure, which the read libarchive
 * falls back to then reports.
 */
static la_int64_t skip_cb(struct archive *a, void *p, la_int64_t request) {
  applier *ap = p;
  la_int64_t skipped = 0;
  while (skipped < request) {
    if (ap->run_len == 0) {
      const void *run;
      ssize_t n = produce(ap, &run);
      if (n < 0) break;
      if (n == 0) {
        la_int64_t missing = request - skipped;
        if (ap->in_data && !ap->padded && missing < 512 && (ap->fed + (uint64_t)missing) % 512 == 0) {
          ap->padded = true;
          ap->fed += (uint64_t)missing;
          skipped += missing;
        }
        break;
      }
      ap->run = run;
      ap->run_len = (size_t)n;
    }
    size_t take = ap->run_len;
    if ((uint64_t)take > (uint64_t)(request - skipped)) take = (size_t)(request - skipped);
    ap->run += take;
    ap->run_len -= take;
    ap->fed += take;
    skipped += (la_int64_t)take;
  }
  return skipped;
}

/* ------------------------------------------------------------ filesystem */

/*
 * Cleans an entry name into a path relative to the root: empty and `.`
 * components dropped, `..` refused. The result is written to `out`;
 * false (with the failure recorded) when the name climbs out.
 */
static bool clean_name(applier *ap, const char *name, char *out, size_t size) {
  size_t len = 0;
  const char *p = name;
  while (*p != '\0') {
    while (*p == '/') p++;
    const char *start = p;
    while (*p != '\0' && *p != '/') p++;
    size_t n = (size_t)(p - start);
    if (n == 0 || (n == 1 && start[0] == '.')) continue;
    if (n == 2 && start[0] == '.' && start[1] == '.') {
      fail(ap, 0, true, "layer entry \"%.200s\" escapes the root", name);
      return false;
    }
    if (len + n + 2 > size) {
      fail(ap, 0, true, "layer entry name is too long (%zu bytes)", strlen(name));
      return false;
    }
    if (len > 0) out[len++] = '/';
    memcpy(out + len, start, n);
    len += n;
  }
  out[len] = '\0';
  return true;
}

/*
 * Opens the directory `rel` (relative to the root) one component at a time,
 * never following a symlink; with `create`, missing directories are made
 * (0755, root-owned, as the layer's own entry for one fixes them later).
 * Returns the fd, or -1 with the failure recorded (ENOENT when a component
 * is missing and `create` is off, so callers can word it).
 */
static int open_dir(applier *ap, const char *rel, bool create, int *missing) {
  int fd = dup(ap->rootfd);
  if (fd < 0) {
    fail(ap, errno, false, "dup: %s", strerror(errno));
    return -1;
  }
  char part[NAME_MAX + 1];
  const char *p = rel;
  size_t done = 0;
  while (*p != '\0') {
    const char *start = p;
    while (*p != '\0' && *p != '/') p++;
    size_t n = (size_t)(p - start);
    if (n > NAME_MAX) {
      close(fd);
      fail(ap, 0, true, "layer entry has a name component over %d bytes", NAME_MAX);
      return -1;
    }
    memcpy(part, start, n);
    part[n] = '\0';
    done = (size_t)(p - rel);
    if (*p == '/') p++;
    int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (mkdirat(fd, part, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        close(fd);
        fail(ap, e, false, "mkdir /%.*s: %s", (int)done, rel, strerror(e));
        return -1;
      }
      next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int e = errno;
      struct stat st;
      bool link = e == ELOOP || (e == ENOTDIR && fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode));
      close(fd);
      if (link) fail(ap, 0, true, "layer entry goes through the symlink /%.*s", (int)done, rel);
      else if (e == ENOTDIR) fail(ap, 0, true, "layer entry needs /%.*s to be a directory", (int)done, rel);
      else if (e == ENOENT && missing != NULL) *missing = 1;
      else fail(ap, e, false, "open /%.*s: %s", (int)done, rel, strerror(e));
      return -1;
    }
    close(fd);
    fd = next;
  }
  return fd;
}

/* The parent directory of `rel`, made as needed; cached while nothing is removed. */
static int parent_dir(applier *ap, const char *dir) {
  if (ap->cached_dir != NULL && strcmp(ap->cached_dir, dir) == 0) return ap->cached_fd;
  int fd = open_dir(ap, dir, true, NULL);
  if (fd < 0) return -1;
  if (ap->cached_dir != NULL) close(ap->cached_fd);
  free(ap->cached_dir);
  ap->cached_dir = strdup(dir);
  ap->cached_fd = fd;
  if (ap->cached_dir == NULL) {
    close(fd);
    fail(ap, ENOMEM, false, "out of memory");
    return -1;
  }
  return fd;
}

static void forget_dir(applier *ap) {
  if (ap->cached_dir == NULL) return;
  close(ap->cached_fd);
  free(ap->cached_dir);
  ap->cached_dir = NULL;
}

/* Removes `name` in `dirfd` and, for a directory, everything under it, without following symlinks. */
static int remove_tree(int dirfd, const char *name) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    rc = remove_tree(fd, de->d_name);
  }
  closedir(d);
  if (rc != 0) return rc;
  return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

/* Clears whatever stands at `name` unless it is a directory and one is wanted. */
static bool clear_place(applier *ap, int dirfd, const char *name, const char *rel, bool want_dir) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return true;
  if (want_dir && S_ISDIR(st.st_mode)) return true;
  /* The cached parent may sit under what goes. */
  bool keep_cache = !S_ISDIR(st.st_mode);
  int fd = dirfd;
  if (!keep_cache) {
    fd = dup(dirfd);
    forget_dir(ap);
    if (fd < 0) {
      fail(ap, errno, false, "dup: %s", strerror(errno));
      return false;
    }
  }
  int rc = remove_tree(fd, name);
  int e = errno;
  if (!keep_cache) close(fd);
  if (rc != 0) {
    fail(ap, e, false, "remove /%s: %s", rel, strerror(e));
    return false;
  }
  return true;
}

/* Splits `rel` at its last slash: `dir` gets the part before ("" at the top), the rest is returned. */
static const char *split(const char *rel, char *dir, size_t size) {
  const char *slash = strrchr(rel, '/');
  if (slash == NULL) {
    dir[0] = '\0';
    return rel;
  }
  size_t n = (size_t)(slash - rel);
  if (n >= size) n = size - 1;
  memcpy(dir, rel, n);
  dir[n] = '\0';
  return slash + 1;
}

/* Drops the entry's trusted.overlay.* xattrs, which would steer overlayfs. */
static void drop_overlay_xattrs(struct archive_entry *e) {
  if (archive_entry_xattr_reset(e) == 0) return;
  const char *name;
  const void *value;
  size_t size;
  bool any = false;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (strncmp(name, "trusted.overlay.", 16) == 0) any = true;
  }
  if (!any) return;
  struct kept {
    char *name;
    void *value;
    size_t size;
  } *kept = NULL;
  size_t n = 0, cap = 0;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (strncmp(name, "trusted.overlay.", 16) == 0) continue;
    if (n == cap) {
      cap = cap == 0 ? 8 : cap * 2;
      struct kept *grown = realloc(kept, cap * sizeof *kept);
      if (grown == NULL) break;
      kept = grown;
    }
    kept[n].name = strdup(name);
    kept[n].value = malloc(size > 0 ? size : 1);
    if (kept[n].value != NULL) memcpy(kept[n].value, value, size);
    kept[n].size = size;
    n++;
  }
  archive_entry_xattr_clear(e);
  for (size_t i = 0; i < n; i++) {
    if (kept[i].name != NULL && kept[i].value != NULL) archive_entry_xattr_add_entry(e, kept[i].name, kept[i].value, kept[i].size);
    free(kept[i].name);
    free(kept[i].value);
  }
  free(kept);
}

/* --------------------------------------------------------------- extract */

static const int disk_flags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                              ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT;

static void archive_failed(applier *ap, struct archive *a, const char *what) {
  if (ap->failed) return;
  int e = archive_errno(a);
  const char *msg = archive_error_string(a);
  /* Out of space or I/O trouble is the node's, not the layer's. */
  bool system = e == ENOSPC || e == EDQUOT || e == EIO || e == ENOMEM || e == EROFS;
  /* libarchive fails some reads past the end of the input (an extended header's body) without a message. */
  if (msg == NULL) msg = a == ap->reader && ap->eof ? "the input ends early" : "failed";
  fail(ap, system ? e : 0, !system, "%s: %s", what, msg);
}

/* The entry's next block of data; inside it, the end of the input may fall in the padding (see "end of the input"). */
static int read_block(applier *ap, struct archive *in, const void **block, size_t *size, la_int64_t *offset) {
  ap->in_data = true;
  int r = archive_read_data_block(in, block, size, offset);
  ap->in_data = false;
  return r;
}

/*
 * Reads the rest of the entry's data and drops it; false (recorded) on
 * failure. Read, not skipped, so that the input ending inside the data
 * fails as it should.
 */
static bool drop_data(applier *ap, struct archive *in, const char *rel) {
  const void *block;
  size_t size;
  la_int64_t offset;
  int r;
  while ((r = read_block(ap, in, &block, &size, &offset)) == ARCHIVE_OK) {
  }
  if (r != ARCHIVE_EOF) {
    archive_failed(ap, in, rel);
    return false;
  }
  return true;
}

/* Applies one entry; false on failure. `path` and `link` are scratch buffers of PATH_MAX. */
static bool apply_entry(applier *ap, struct archive *in, struct archive *disk, struct archive_entry *e, char *rel, char *path, char *link) {
  const char *name = archive_entry_pathname(e);
  if (name == NULL) {
    fail(ap, 0, true, "layer entry has a name that cannot be read");
    return false;
  }
  if (!clean_name(ap, name, rel, PATH_MAX)) return false;
  if (rel[0] == '\0') return drop_data(ap, in, name);
  char dir[PATH_MAX];
  const char *base = split(rel, dir, sizeof dir);
  int dirfd = parent_dir(ap, dir);
  if (dirfd < 0) return false;

  if (strcmp(base, ".wh..wh..opq") == 0) {
    if (fsetxattr(dirfd, "trusted.overlay.opaque", "y", 1, 0) != 0) {
      fail(ap, errno, false, "mark /%s opaque: %s", dir, strerror(errno));
      return false;
    }
    return drop_data(ap, in, rel);
  }
  if (strncmp(base, ".wh..wh.", 8) == 0) {
    /* Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs) describes nothing to create. */
    return drop_data(ap, in, rel);
  }
  if (strncmp(base, ".wh.", 4) == 0) {
    const char *gone = base + 4;
    if (gone[0] == '\0' || strcmp(gone, ".") == 0 || strcmp(gone, "..") == 0) {
      fail(ap, 0, true, "layer entry \"%.200s\" is a whiteout of nothing", name);
      return false;
    }
    if (!clear_place(ap, dirfd, gone, rel, false)) return false;
    dirfd = parent_dir(ap, dir);
    if (dirfd < 0) return false;
    if (mknodat(dirfd, gone, S_IFCHR | 0, makedev(0, 0)) != 0) {
      fail(ap, errno, false, "whiteout /%s: %s", rel, strerror(errno));
      return false;
    }
    return drop_data(ap, in, rel);
  }

  const char *hardlink = archive_entry_hardlink(e);
  if (hardlink != NULL) {
    char target[PATH_MAX], tdir[PATH_MAX];
    if (!clean_name(ap, hardlink, target, sizeof target)) return false;
    const char *tbase = split(target, tdir, sizeof tdir);
    int missing = 0;
    int tfd = open_dir(ap, tdir, false, &missing);
    struct stat st;
    if (tfd < 0 && !missing) return false;
    bool exists = tfd >= 0 && target[0] != '\0' && fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (tfd >= 0) close(tfd);
    if (!exists) {
      fail(ap, 0, true, "hard link \"%.200s\" points outside this layer", name);
      return false;
    }
    if (S_ISDIR(st.st_mode)) {
      fail(ap, 0, true, "hard link \"%.200s\" points at a directory", name);
      return false;
    }
    if (snprintf(link, PATH_MAX, "%s/%s", ap->root, target) >= PATH_MAX) {
      fail(ap, 0, true, "hard link target of \"%.200s\" is too long", name);
      return false;
    }
    archive_entry_set_hardlink(e, link);
  }
  if (!clear_place(ap, dirfd, base, rel, hardlink == NULL && archive_entry_filetype(e) == AE_IFDIR)) return false;
  if (snprintf(path, PATH_MAX, "%s/%s", ap->root, rel) >= PATH_MAX) {
    fail(ap, 0, true, "layer entry \"%.200s\" is too long", name);
    return false;
  }
  archive_entry_set_pathname(e, path);
  drop_overlay_xattrs(e);

  /*
   * On the disk side a warning is a failure: libarchive reports a failed
   * write(2) (a full disk), owner or xattr as ARCHIVE_WARN and goes on,
   * which would leave a short file or a missing attribute behind.
   */
  if (archive_write_header(disk, e) != ARCHIVE_OK) {
    archive_failed(ap, disk, rel);
    return false;
  }
  if (archive_entry_size(e) > 0) {
    const void *block;
    size_t size;
    la_int64_t offset;
    int r;
    while ((r = read_block(ap, in, &block, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(disk, block, size, offset) != ARCHIVE_OK) {
        archive_failed(ap, disk, rel);
        return false;
      }
    }
    if (r != ARCHIVE_EOF && r < ARCHIVE_WARN) {
      archive_failed(ap, in, rel);
      return false;
    }
  }
  /* Whatever libarchive still holds as data (none for most entries): read, not skipped. */
  if (!drop_data(ap, in, rel)) return false;
  if (archive_write_finish_entry(disk) != ARCHIVE_OK) {
    archive_failed(ap, disk, rel);
    return false;
  }
  return true;
}

static void extract(applier *ap) {
  struct archive *in = archive_read_new();
  struct archive *disk = archive_write_disk_new();
  char *rel = malloc(PATH_MAX), *path = malloc(PATH_MAX), *link = malloc(PATH_MAX);
  if (in == NULL || disk == NULL || rel == NULL || path == NULL || link == NULL) {
    fail(ap, ENOMEM, false, "out of memory");
    goto out;
  }
  ap->reader = in;
  archive_read_support_format_tar(in);
  archive_read_support_format_empty(in);
  archive_write_disk_set_options(disk, disk_flags);
  if (archive_read_open2(in, ap, NULL, read_cb, skip_cb, NULL) != ARCHIVE_OK) {
    archive_failed(ap, in, "layer is not a valid tar");
    goto out;
  }
  for (;;) {
    struct archive_entry *e;
    /* With no filter of libarchive's own, filter 0 is the tar as read_cb and skip_cb give it. */
    int64_t header_at = archive_filter_bytes(in, 0);
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) {
      /*
       * libarchive ends the archive at one zero block whatever follows it;
       * Go's archive/tar wants the input to end there, or a second zero
       * block (after which nothing is read).
       */
      int64_t end = archive_filter_bytes(in, 0);
      if (end - header_at == 512) {
        const void *more;
        bool followed = ap->fed > (uint64_t)end || ap->run_len > 0 || produce(ap, &more) > 0;
        if (ap->failed) goto out;
        if (followed) {
          fail(ap, 0, true, "layer is not a valid tar: a zero block is followed by something other than a second one");
          goto out;
        }
      }
      break;
    }
    if (r < ARCHIVE_WARN) {
      archive_failed(ap, in, "layer is not a valid tar");
      goto out;
    }
    if (!apply_entry(ap, in, disk, e, rel, path, link)) goto out;
  }
  /* Directory modes and times are set last, as libarchive defers them. */
  if (archive_write_close(disk) != ARCHIVE_OK) {
    archive_failed(ap, disk, "layer");
    goto out;
  }
  /* What follows the tar's end (padding) belongs to the diff ID too. */
  const void *rest;
  ssize_t n;
  while ((n = produce(ap, &rest)) > 0) {
  }
out:
  forget_dir(ap);
  if (disk != NULL) archive_write_free(disk);
  if (in != NULL) archive_read_free(in);
  free(rel);
  free(path);
  free(link);
}

static void *applier_thread(void *p) {
  applier *ap = p;
  /*
   * Names must come out byte for byte as the layer has them. libarchive
   * converts pax names from UTF-8 to the locale's charset; into UTF-8 it
   * also normalises them to NFC (a decomposed "é" would become another
   * name). In the C locale the conversion fails with a warning and the raw
   * bytes are kept, so this thread uses the C locale whatever the process's is.
   */
  locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (c_locale != (locale_t)0) uselocale(c_locale);
  /*
   * libarchive reads the umask by setting it to 0 and back, at every entry;
   * two threads doing that at once can leave the process's umask at 0. With
   * its own filesystem attributes this thread's umask is its own.
   */
  if (unshare(CLONE_FS) != 0) fail(ap, errno, false, "unshare(CLONE_FS): %s", strerror(errno));
  umask(022);
  ap->hash = EVP_MD_CTX_new();
  ap->out = malloc(OUT_BYTES);
  if (ap->hash == NULL || ap->out == NULL || EVP_DigestInit_ex(ap->hash, EVP_sha256(), NULL) != 1) fail(ap, ENOMEM, false, "cannot start the layer hash");
  if (!ap->failed && ap->compression == COMPRESSION_GZIP) {
    if (inflateInit2(&ap->z, 16 + MAX_WBITS) != Z_OK) fail(ap, ENOMEM, false, "cannot start gzip");
    else ap->z_ready = true;
  }
  if (!ap->failed && ap->compression == COMPRESSION_ZSTD) {
    ap->zstd = ZSTD_createDCtx();
    if (ap->zstd == NULL || ZSTD_isError(ZSTD_DCtx_setParameter(ap->zstd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) fail(ap, ENOMEM, false, "cannot start zstd");
  }
  if (!ap->failed) {
    ap->rootfd = open(ap->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ap->rootfd < 0) fail(ap, errno, false, "open %s: %s", ap->root, strerror(errno));
  }
  if (!ap->failed) extract(ap);
  if (ap->failed) {
    post_end(ap, EVENT_FAILED, ap->err, 0, ap->err_errno, ap->err_content);
  } else {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    EVP_DigestFinal_ex(ap->hash, md, &len);
    for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * len] = '\0';
    post_end(ap, EVENT_DONE, hex, ap->bytes, 0, false);
  }
  if (ap->rootfd >= 0) close(ap->rootfd);
  if (ap->z_ready) inflateEnd(&ap->z);
  ZSTD_freeDCtx(ap->zstd);
  EVP_MD_CTX_free(ap->hash);
  free(ap->out);
  free(ap->batch);
  free(ap->root);
  if (c_locale != (locale_t)0) {
    uselocale(LC_GLOBAL_LOCALE);
    freelocale(c_locale);
  }
  napi_release_threadsafe_function(ap->tsfn, napi_tsfn_release);
  unref(ap);
  return NULL;
}

/* ------------------------------------------------------------ JS binding */

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  event *ev = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[5], undefined;
    size_t argc = 1;
    napi_get_undefined(env, &undefined);
    napi_create_int32(env, ev == NULL ? EVENT_TAKEN : ev->kind, &argv[0]);
    if (ev != NULL) {
      napi_create_string_utf8(env, ev->text, NAPI_AUTO_LENGTH, &argv[1]);
      napi_create_double(env, ev->bytes, &argv[2]);
      napi_get_boolean(env, ev->content, &argv[3]);
      if (ev->code != NULL) napi_create_string_utf8(env, ev->code, NAPI_AUTO_LENGTH, &argv[4]);
      else argv[4] = undefined;
      argc = 5;
    }
    napi_call_function(env, undefined, cb, argc, argv, NULL);
  }
  free(ev);
}

/* Tells the thread to stop: it fails the apply at its next wait for input. */
static void request_abort(applier *ap) {
  pthread_mutex_lock(&ap->lock);
  ap->aborted = true;
  pthread_cond_signal(&ap->cond);
  pthread_mutex_unlock(&ap->lock);
}

/* The JS handle was collected: the thread, if still running, stops. */
static void handle_finalize(napi_env env, void *data, void *hint) {
  request_abort(data);
  unref(data);
}

/* The type tag of an applier handle, so get_handle refuses any other external. */
static const napi_type_tag applier_tag = {0x6265727468617070ULL, 0x6c6965726c617972ULL};

static napi_value ApplierOpen(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *root = NULL;
  unsigned int compression;
  double max_bytes;
  napi_valuetype t;
  if (!get_args(env, info, 4, argv) || !get_uint(env, argv[1], "compression", 2, &compression)) return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_number || napi_get_value_double(env, argv[2], &max_bytes) != napi_ok || !(max_bytes >= 0)) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "maxBytes", "a number >= 0");
    return NULL;
  }
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "onEvent", "a function");
    return NULL;
  }
  if (!get_cstring(env, argv[0], "root", &root)) return NULL;
  char *real = realpath(root, NULL);
  if (real == NULL) {
    throw_errno(env, errno, "realpath", argv[0], root);
    free(root);
    return NULL;
  }
  free(root);
  applier *ap = calloc(1, sizeof *ap);
  event *final = calloc(1, sizeof *final);
  if (ap == NULL || final == NULL) {
    free(ap);
    free(final);
    free(real);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  ap->root = real;
  ap->final = final;
  ap->rootfd = -1;
  ap->compression = (int)compression;
  ap->max_bytes = max_bytes;
  ap->refs = 2;
  pthread_mutex_init(&ap->lock, NULL);
  pthread_cond_init(&ap->cond, NULL);
  napi_value name, handle;
  napi_create_string_utf8(env, "berth:applyLayer", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &ap->tsfn) != napi_ok) {
    free(ap->root);
    free(ap->final);
    free(ap);
    napi_throw_error(env, NULL, "cannot make the layer applier's callback");
    return NULL;
  }
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&thread, &attr, applier_thread, ap);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(ap->tsfn, napi_tsfn_abort);
    free(ap->root);
    free(ap->final);
    free(ap);
    napi_throw_error(env, NULL, "cannot start the layer applier's thread");
    return NULL;
  }
  if (napi_create_external(env, ap, handle_finalize, NULL, &handle) != napi_ok) {
    /* The thread still holds its reference and ends when aborted. */
    handle_finalize(env, ap, NULL);
    napi_throw_error(env, NULL, "cannot make the layer applier's handle");
    return NULL;
  }
  /* Only a handle tagged so is taken for an applier (a rewriter's is not). */
  if (napi_type_tag_object(env, handle, &applier_tag) != napi_ok) return NULL;
  return handle;
}

static applier *get_handle(napi_env env, napi_value v) {
  return get_tagged_external(env, v, &applier_tag, "a layer applier");
}

/*
 * applierPush(handle, chunks: Uint8Array[] | null): false when a batch is
 * still waiting to be taken. The bytes are not copied: JS must keep the
 * chunks alive, unchanged, until the next batch is taken or the applier
 * has reported its end. An empty batch is ignored; null ends the input.
 */
static napi_value ApplierPush(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  if (!get_args(env, info, 2, argv)) return NULL;
  applier *ap = get_handle(env, argv[0]);
  if (ap == NULL) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  bool end = t == napi_null || t == napi_undefined;
  struct iovec *iov = NULL;
  size_t n = 0;
  if (!end) {
    bool is_array = false;
    uint32_t count = 0;
    napi_is_array(env, argv[1], &is_array);
    if (!is_array || napi_get_array_length(env, argv[1], &count) != napi_ok) {
      throw_type(env, "ERR_INVALID_ARG_TYPE", "chunks", "an array of Uint8Array, or null");
      return NULL;
    }
    iov = calloc(count > 0 ? count : 1, sizeof *iov);
    if (iov == NULL) {
      napi_throw_error(env, "ENOMEM", "out of memory");
      return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
      napi_value item;
      bool is_typed = false;
      napi_typedarray_type type;
      size_t len = 0;
      void *data = NULL;
      if (napi_get_element(env, argv[1], i, &item) != napi_ok || napi_is_typedarray(env, item, &is_typed) != napi_ok || !is_typed ||
          napi_get_typedarray_info(env, item, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
        free(iov);
        throw_type(env, "ERR_INVALID_ARG_TYPE", "chunks", "an array of Uint8Array, or null");
        return NULL;
      }
      if (len == 0) continue;
      iov[n].iov_base = data;
      iov[n].iov_len = len;
      n++;
    }
    if (n == 0) {
      free(iov);
      napi_get_boolean(env, true, &result);
      return result;
    }
  }
  pthread_mutex_lock(&ap->lock);
  bool accepted = !ap->has_pending && !ap->input_ended;
  if (accepted) {
    if (end) ap->input_ended = true;
    else {
      ap->pending = iov;
      ap->pending_n = n;
      ap->has_pending = true;
      iov = NULL;
    }
    pthread_cond_signal(&ap->cond);
  }
  pthread_mutex_unlock(&ap->lock);
  free(iov);
  napi_get_boolean(env, accepted, &result);
  return result;
}

static napi_value ApplierAbort(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  applier *ap = get_handle(env, argv[0]);
  if (ap != NULL) request_abort(ap);
  return NULL;
}

bool layer_register(napi_env env, napi_value exports) {
  static const export_fn fns[] = {{"applierOpen", ApplierOpen}, {"applierPush", ApplierPush}, {"applierAbort", ApplierAbort}};
  return export_functions(env, exports, fns, sizeof fns / sizeof fns[0]);
}
