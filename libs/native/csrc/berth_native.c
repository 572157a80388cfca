/*
 * @berth/native: the filesystem calls Node lacks: for building overlayfs
 * snapshots from image layers, mknod(2) and the l*xattr(2) family; for
 * mounting root filesystems, pod namespaces and /dev/shm, mount(2) and
 * umount2(2).
 *
 * Plain Node-API (NAPI_VERSION 8, set in binding.gyp), no libuv and no
 * node-addon-api, so the addon is ABI-stable across Node releases.
 *
 * mknod and the xattr calls are synchronous (like fs.*Sync); mount and
 * umount2 run on Node's thread pool and return promises, as an unmount of
 * overlayfs syncs its upper filesystem and may take a while. Errors mirror Node's fs errors:
 * an Error with code ('EEXIST'), errno (negative, as Node reports it),
 * syscall and path, and the message "EEXIST: file already exists, mknod '/x'".
 * Bad argument types throw TypeError (code ERR_INVALID_ARG_TYPE); a path or
 * attribute name containing a NUL byte throws TypeError
 * (ERR_INVALID_ARG_VALUE) instead of being silently truncated by C.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <fts.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <uv.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include "args.h"
#include "errors.h"
#include "layer.h"
#include "hpack.h"

/* Linux's dev_t encoding in mknod(2) holds a 12-bit major and a 20-bit minor. */
#define MAX_MAJOR 0xfffu
#define MAX_MINOR 0xfffffu

/* Bail out of a binding when a Node-API call fails; an exception is then
 * pending (or we raise a generic one) and the binding returns NULL. */
#define NAPI_CALL(env, call)                                                 \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      bool pending_ = false;                                                 \
      napi_is_exception_pending((env), &pending_);                           \
      if (!pending_) napi_throw_error((env), NULL, "Node-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* ---------------------------------------------------------------- errors */

/* errno -> (code, message). Messages follow libuv's wording, which is what
 * Node's own fs errors use; anything not listed falls back to glibc. */
static const struct {
  int err;
  const char *code;
  const char *msg;
} errno_table[] = {
  {EPERM, "EPERM", "operation not permitted"},
  {ENOENT, "ENOENT", "no such file or directory"},
  {EINTR, "EINTR", "interrupted system call"},
  {EIO, "EIO", "i/o error"},
  {E2BIG, "E2BIG", "argument list too long"},
  {EBADF, "EBADF", "bad file descriptor"},
  {EAGAIN, "EAGAIN", "resource temporarily unavailable"},
  {ENOMEM, "ENOMEM", "not enough memory"},
  {EACCES, "EACCES", "permission denied"},
  {EFAULT, "EFAULT", "bad address in system call argument"},
  {EBUSY, "EBUSY", "resource busy or locked"},
  {EEXIST, "EEXIST", "file already exists"},
  {EXDEV, "EXDEV", "cross-device link not permitted"},
  {ENODEV, "ENODEV", "no such device"},
  {ENOTDIR, "ENOTDIR", "not a directory"},
  {EISDIR, "EISDIR", "illegal operation on a directory"},
  {EINVAL, "EINVAL", "invalid argument"},
  {ENFILE, "ENFILE", "file table overflow"},
  {EMFILE, "EMFILE", "too many open files"},
  {EFBIG, "EFBIG", "file too large"},
  {ENOSPC, "ENOSPC", "no space left on device"},
  {EROFS, "EROFS", "read-only file system"},
  {EMLINK, "EMLINK", "too many links"},
  {ERANGE, "ERANGE", "result too large"},
  {ENAMETOOLONG, "ENAMETOOLONG", "name too long"},
  {ENOSYS, "ENOSYS", "function not implemented"},
  {ELOOP, "ELOOP", "too many symbolic links encountered"},
  {ENODATA, "ENODATA", "no data available"},
  {EOVERFLOW, "EOVERFLOW", "value too large for defined data type"},
  /* EOPNOTSUPP == ENOTSUP on Linux; Node (libuv) names it ENOTSUP. */
  {ENOTSUP, "ENOTSUP", "operation not supported"},
  {EDQUOT, "EDQUOT", "disk quota exceeded"},
};

/* The errno's name as Node gives it ("ENOENT") and its message in libuv's wording. */
static void describe_errno(int err, const char **code, const char **msg) {
  for (size_t i = 0; i < sizeof errno_table / sizeof errno_table[0]; i++) {
    if (errno_table[i].err == err) {
      *code = errno_table[i].code;
      *msg = errno_table[i].msg;
      return;
    }
  }
  *code = strerrorname_np(err); /* glibc >= 2.32; NULL when unknown */
  *msg = strerrordesc_np(err);
  if (*code == NULL) *code = "UNKNOWN";
  if (*msg == NULL) *msg = "unknown error";
}

const char *errno_code(int err) {
  const char *code, *msg;
  describe_errno(err, &code, &msg);
  return code;
}

/* Makes a Node-style system error (NULL with an exception pending, or none,
 * when even that fails). path_value is the caller's JS string. */
static napi_value errno_error(napi_env env, int err, const char *syscall, napi_value path_value,
                              const char *path) {
  const char *code, *msg;
  describe_errno(err, &code, &msg);

  /* "<CODE>: <msg>, <syscall> '<path>'" */
  size_t len = strlen(code) + strlen(msg) + strlen(syscall) + strlen(path) + 16;
  char *text = malloc(len);
  if (text == NULL) return NULL;
  snprintf(text, len, "%s: %s, %s '%s'", code, msg, syscall, path);

  napi_value code_v, msg_v, error, errno_v, syscall_v;
  bool ok = napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) == napi_ok &&
            napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg_v) == napi_ok &&
            napi_create_error(env, code_v, msg_v, &error) == napi_ok &&
            napi_create_int32(env, -err, &errno_v) == napi_ok &&
            napi_set_named_property(env, error, "errno", errno_v) == napi_ok &&
            napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) == napi_ok &&
            napi_set_named_property(env, error, "syscall", syscall_v) == napi_ok &&
            napi_set_named_property(env, error, "path", path_value) == napi_ok;
  free(text);
  return ok ? error : NULL;
}

/* Throws a Node-style system error. */
void throw_errno(napi_env env, int err, const char *syscall, napi_value path_value,
                        const char *path) {
  napi_value error = errno_error(env, err, syscall, path_value, path);
  if (error != NULL) {
    napi_throw(env, error);
    return;
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "UNKNOWN", "a system call failed");
}

/* ------------------------------------------------------------- arguments */

/* argv[0] as `path` and argv[1] as `name`; on failure nothing is left allocated. */
static bool get_path_and_name(napi_env env, napi_value *argv, char **path, char **name) {
  if (!get_cstring(env, argv[0], "path", path)) return false;
  if (!get_cstring(env, argv[1], "name", name)) {
    free(*path);
    *path = NULL;
    return false;
  }
  return true;
}

/* -------------------------------------------------------------- bindings */

/* mknod(path, mode, major, minor): mode carries the S_IF* type bits. */
static napi_value Mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  unsigned int mode, major_n, minor_n;
  char *path = NULL;
  if (!get_cstring(env, argv[0], "path", &path)) return NULL;
  if (!get_uint(env, argv[1], "mode", 0xffff, &mode) ||
      !get_uint(env, argv[2], "major", MAX_MAJOR, &major_n) ||
      !get_uint(env, argv[3], "minor", MAX_MINOR, &minor_n)) {
    free(path);
    return NULL;
  }
  if (mknod(path, (mode_t)mode, makedev(major_n, minor_n)) != 0) {
    throw_errno(env, errno, "mknod", argv[0], path);
  }
  free(path);
  return NULL;
}

/* lsetxattr(path, name, value: Buffer | Uint8Array) */
static napi_value Lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  bool is_buffer = false;
  NAPI_CALL(env, napi_is_buffer(env, argv[2], &is_buffer));
  char *path = NULL, *name = NULL;
  if (!get_path_and_name(env, argv, &path, &name)) return NULL;
  if (!is_buffer) {
    free(path);
    free(name);
    throw_type(env, "ERR_INVALID_ARG_TYPE", "value", "an instance of Buffer or Uint8Array");
    return NULL;
  }
  void *data = NULL;
  size_t size = 0;
  if (napi_get_buffer_info(env, argv[2], &data, &size) != napi_ok) {
    free(path);
    free(name);
    return NULL;
  }
  static const char empty = 0;
  if (lsetxattr(path, name, size ? data : &empty, size, 0) != 0) {
    throw_errno(env, errno, "lsetxattr", argv[0], path);
  }
  free(path);
  free(name);
  return NULL;
}

/* lgetxattr(path, name) -> Buffer | undefined (ENODATA) */
static napi_value Lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = NULL, *name = NULL;
  if (!get_path_and_name(env, argv, &path, &name)) return NULL;
  napi_value result = NULL;
  char *buf = NULL;
  for (;;) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size >= 0) {
      char *grown = realloc(buf, size > 0 ? (size_t)size : 1);
      if (grown == NULL) {
        napi_throw_error(env, "ENOMEM", "out of memory");
        break;
      }
      buf = grown;
      size = size > 0 ? lgetxattr(path, name, buf, (size_t)size) : 0;
      if (size >= 0) {
        napi_create_buffer_copy(env, (size_t)size, buf, NULL, &result);
        break;
      }
    }
    if (errno == ERANGE) continue; /* grew between the two calls: retry */
    if (errno == ENODATA) {
      napi_get_undefined(env, &result);
    } else {
      throw_errno(env, errno, "lgetxattr", argv[0], path);
    }
    break;
  }
  free(buf);
  free(path);
  free(name);
  return result;
}

/* llistxattr(path) -> string[] */
static napi_value Llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = NULL;
  if (!get_cstring(env, argv[0], "path", &path)) return NULL;
  char *buf = NULL;
  ssize_t size;
  for (;;) {
    size = llistxattr(path, NULL, 0);
    if (size > 0) {
      char *grown = realloc(buf, (size_t)size);
      if (grown == NULL) {
        free(buf);
        free(path);
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
      }
      buf = grown;
      size = llistxattr(path, buf, (size_t)size);
    }
    if (size >= 0) break;
    if (errno == ERANGE) continue; /* grew between the two calls: retry */
    throw_errno(env, errno, "llistxattr", argv[0], path);
    free(buf);
    free(path);
    return NULL;
  }
  napi_value list = NULL;
  if (napi_create_array(env, &list) == napi_ok) {
    uint32_t n = 0;
    for (ssize_t off = 0; off < size;) {
      size_t len = strnlen(buf + off, (size_t)(size - off));
      napi_value s;
      if (len > 0) {
        if (napi_create_string_utf8(env, buf + off, len, &s) != napi_ok ||
            napi_set_element(env, list, n++, s) != napi_ok) {
          list = NULL;
          break;
        }
      }
      off += (ssize_t)len + 1;
    }
  }
  free(buf);
  free(path);
  return list;
}

/* lremovexattr(path, name) */
static napi_value Lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = NULL, *name = NULL;
  if (!get_path_and_name(env, argv, &path, &name)) return NULL;
  if (lremovexattr(path, name) != 0) {
    throw_errno(env, errno, "lremovexattr", argv[0], path);
  }
  free(path);
  free(name);
  return NULL;
}

/* ---------------------------------------------------- mount and umount2 */

/* One mount(2) or umount2(2) call, run on the thread pool. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  bool is_umount;
  char *source, *target, *fstype, *data;
  unsigned long flags;
  int err;
} mount_call;

static void mount_call_free(mount_call *c) {
  free(c->source);
  free(c->target);
  free(c->fstype);
  free(c->data);
  free(c);
}

static void mount_execute(napi_env env, void *p) {
  mount_call *c = p;
  int rc = c->is_umount ? umount2(c->target, (int)c->flags)
                        : mount(c->source, c->target, c->fstype, c->flags, c->data);
  c->err = rc == 0 ? 0 : errno;
}

/*
 * Settles a thread-pool call's promise: resolved when the work ran and
 * `err` is 0, else rejected with a Node-style error naming `syscall` and
 * `path`.
 */
static void settle(napi_env env, napi_deferred deferred, napi_status status, int err, const char *syscall, const char *path) {
  napi_value value = NULL;
  if (status == napi_ok && err == 0) {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, deferred, value);
    return;
  }
  napi_value path_value = NULL;
  if (napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &path_value) == napi_ok) {
    value = errno_error(env, status == napi_ok ? err : ECANCELED, syscall, path_value, path);
  }
  if (value == NULL) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &value);
    else napi_create_string_utf8(env, "native call failed", NAPI_AUTO_LENGTH, &value);
  }
  napi_reject_deferred(env, deferred, value);
}

/* A zeroed thread-pool call record of `size` bytes, or NULL with an exception pending. */
static void *new_call(napi_env env, size_t size) {
  void *c = calloc(1, size);
  if (c == NULL) napi_throw_error(env, "ENOMEM", "out of memory");
  return c;
}

/*
 * Queues `execute` on Node's thread pool and returns the promise `complete`
 * settles. NULL, with an exception pending, when it cannot: `data` is then
 * the caller's to free.
 */
static napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data,
                             napi_deferred *deferred, napi_async_work *work) {
  napi_value promise = NULL, name_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &name_value) != napi_ok || napi_create_promise(env, deferred, &promise) != napi_ok) {
    napi_throw_error(env, NULL, "cannot make the promise of a native call");
    return NULL;
  }
  if (napi_create_async_work(env, NULL, name_value, execute, complete, data, work) != napi_ok || napi_queue_async_work(env, *work) != napi_ok) {
    /* Cannot happen short of memory exhaustion; the promise is then never settled. */
    napi_throw_error(env, NULL, "cannot queue a native call");
    return NULL;
  }
  return promise;
}

static void mount_complete(napi_env env, napi_status status, void *p) {
  mount_call *c = p;
  settle(env, c->deferred, status, c->err, c->is_umount ? "umount2" : "mount", c->target);
  napi_delete_async_work(env, c->work);
  mount_call_free(c);
}

/* An optional string argument: null or undefined read as NULL. */
static bool get_optional_cstring(napi_env env, napi_value v, const char *what, char **out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) {
    *out = NULL;
    return true;
  }
  return get_cstring(env, v, what, out);
}

static napi_value queue_mount_call(napi_env env, mount_call *c) {
  napi_value promise = queue_work(env, c->is_umount ? "berth:umount2" : "berth:mount", mount_execute, mount_complete, c, &c->deferred, &c->work);
  if (promise == NULL) mount_call_free(c);
  return promise;
}

/* mount(source | null, target, fstype | null, flags, data | null) -> Promise<void> */
static napi_value Mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  mount_call *c = new_call(env, sizeof *c);
  if (c == NULL) return NULL;
  unsigned int flags;
  if (!get_optional_cstring(env, argv[0], "source", &c->source) ||
      !get_cstring(env, argv[1], "target", &c->target) ||
      !get_optional_cstring(env, argv[2], "fstype", &c->fstype) ||
      !get_uint(env, argv[3], "flags", 4294967295.0, &flags) ||
      !get_optional_cstring(env, argv[4], "data", &c->data)) {
    mount_call_free(c);
    return NULL;
  }
  c->flags = flags;
  return queue_mount_call(env, c);
}

/* umount2(target, flags) -> Promise<void> */
static napi_value Umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  mount_call *c = new_call(env, sizeof *c);
  if (c == NULL) return NULL;
  unsigned int flags;
  if (!get_cstring(env, argv[0], "target", &c->target) || !get_uint(env, argv[1], "flags", 0xff, &flags)) {
    mount_call_free(c);
    return NULL;
  }
  c->is_umount = true;
  c->flags = flags;
  return queue_mount_call(env, c);
}

/* ------------------------------------------------------------------ namespaces */

/*
 * pinNamespaces(net | null, uts | null, ipc | null, hostname | null):
 * new network, UTS and IPC namespaces (those given a target), each
 * bind-mounted onto its target file so it outlives every process, and the
 * hostname set in the new UTS namespace; a new network namespace gets its
 * loopback interface up (what every pod expects of it, as the CNI loopback
 * plugin does, without a process). The work runs on a thread made for
 * it and ended after it: unshare(2) of these namespaces changes only the
 * calling thread, and neither Node's threads nor libuv's pool may end up in
 * a pod's namespaces. A failure names the call and, for a mount, its target;
 * pins made before it are left for the caller to unmount.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *targets[3]; /* net, uts, ipc */
  char *hostname;
  int err;
  const char *failed;
  const char *failed_path;
} pin_call;

static const char *const pin_kinds[3] = {"net", "uts", "ipc"};
static const int pin_flags[3] = {CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC};

static void pin_call_free(pin_call *c) {
  for (int i = 0; i < 3; i++) free(c->targets[i]);
  free(c->hostname);
  free(c);
}

static void *pin_thread(void *p) {
  pin_call *c = p;
  int flags = 0;
  for (int i = 0; i < 3; i++)
    if (c->targets[i] != NULL) flags |= pin_flags[i];
  if (unshare(flags) != 0) {
    c->err = errno;
    c->failed = "unshare";
    return NULL;
  }
  if (c->hostname != NULL && sethostname(c->hostname, strlen(c->hostname)) != 0) {
    c->err = errno;
    c->failed = "sethostname";
    return NULL;
  }
  if (c->targets[0] != NULL) {
    /* A socket belongs to the network namespace of the thread that makes it: this one's new one. */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0 || (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr)) != 0) {
      c->err = errno;
      c->failed = "loopback up";
      if (s >= 0) close(s);
      return NULL;
    }
    close(s);
  }
  for (int i = 0; i < 3; i++) {
    if (c->targets[i] == NULL) continue;
    char source[64];
    snprintf(source, sizeof source, "/proc/thread-self/ns/%s", pin_kinds[i]);
    if (mount(source, c->targets[i], NULL, MS_BIND, NULL) != 0) {
      c->err = errno;
      c->failed = "mount";
      c->failed_path = c->targets[i];
      return NULL;
    }
  }
  return NULL;
}

static void pin_execute(napi_env env, void *p) {
  pin_call *c = p;
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, pin_thread, c);
  if (rc != 0) {
    c->err = rc;
    c->failed = "pthread_create";
    return;
  }
  pthread_join(thread, NULL);
}

static void pin_complete(napi_env env, napi_status status, void *p) {
  pin_call *c = p;
  settle(env, c->deferred, status, c->err, c->failed != NULL ? c->failed : "pinNamespaces", c->failed_path != NULL ? c->failed_path : "");
  napi_delete_async_work(env, c->work);
  pin_call_free(c);
}

static napi_value PinNamespaces(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  pin_call *c = new_call(env, sizeof *c);
  if (c == NULL) return NULL;
  for (int i = 0; i < 3; i++) {
    if (!get_optional_cstring(env, argv[i], pin_kinds[i], &c->targets[i])) {
      pin_call_free(c);
      return NULL;
    }
  }
  if (!get_optional_cstring(env, argv[3], "hostname", &c->hostname)) {
    pin_call_free(c);
    return NULL;
  }
  if (c->targets[0] == NULL && c->targets[1] == NULL && c->targets[2] == NULL) {
    pin_call_free(c);
    napi_throw_type_error(env, NULL, "pinNamespaces: no namespace to pin");
    return NULL;
  }
  if (c->hostname != NULL && c->targets[1] == NULL) {
    pin_call_free(c);
    napi_throw_type_error(env, NULL, "pinNamespaces: a hostname needs a new UTS namespace");
    return NULL;
  }
  napi_value promise = queue_work(env, "berth:pinNamespaces", pin_execute, pin_complete, c, &c->deferred, &c->work);
  if (promise == NULL) pin_call_free(c);
  return promise;
}

/* ------------------------------------------------------------------ memory */

/*
 * malloc_trim(0): hands the free pages of every malloc arena back to the
 * kernel. Start-up (compiling WebAssembly, loading modules) leaves many
 * megabytes free but resident in glibc's arenas; returns whether any memory
 * was released.
 */
static napi_value MallocTrim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, malloc_trim(0) == 1, &result));
  return result;
}


/* ------------------------------------------------------------------ processes */

/*
 * Node's child_process forks: fork(2) copies the page tables of the whole
 * process, a cost that grows with the resident size and that the event loop
 * waits out (5 ms at 45 MiB, 12 ms at 150 MiB here). posix_spawn(3) in
 * glibc uses clone(CLONE_VM | CLONE_VFORK): the child borrows the parent's
 * memory until it execs, so nothing is copied. The exit is watched on a
 * pidfd polled by the event loop; the child is reaped with waitid(2) on it,
 * never with a waitpid(-1) that could take Node's own children.
 */

extern char **environ;

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int pidfd;
  pid_t pid;
} exit_watch;

static void exit_watch_closed(uv_handle_t *handle) { free(handle->data); }

static void exit_watch_fired(uv_poll_t *handle, int status, int events) {
  exit_watch *w = handle->data;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  /* A readable pidfd means the process ended; anything else (an error) leaves it to be reaped now too. */
  if (waitid(P_PIDFD, (id_t)w->pidfd, &info, WEXITED | WNOHANG) != 0 && errno != ECHILD) return;
  if (info.si_pid == 0) return; /* not ended yet */
  uv_poll_stop(handle);
  close(w->pidfd);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, recv, argv[2];
    napi_get_global(env, &recv);
    bool killed = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
    if (killed) {
      napi_get_null(env, &argv[0]);
      napi_create_int32(env, info.si_status, &argv[1]);
    } else {
      napi_create_int32(env, info.si_status, &argv[0]);
      napi_get_null(env, &argv[1]);
    }
    if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
      napi_value ignored;
      if (napi_make_callback(env, w->context, recv, cb, 2, argv, &ignored) == napi_pending_exception) {
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)handle, exit_watch_closed);
}

/* pipe(): [readFd, writeFd], both close-on-exec. */
static napi_value Pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    napi_value empty;
    napi_create_string_utf8(env, "", 0, &empty);
    throw_errno(env, errno, "pipe2", empty, "");
    return NULL;
  }
  napi_value result, r, w;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &result));
  NAPI_CALL(env, napi_create_int32(env, fds[0], &r));
  NAPI_CALL(env, napi_create_int32(env, fds[1], &w));
  NAPI_CALL(env, napi_set_element(env, result, 0, r));
  NAPI_CALL(env, napi_set_element(env, result, 1, w));
  return result;
}

/* Reads an array of strings into a NULL-terminated, malloc'd vector. */
static bool get_string_vector(napi_env env, napi_value v, const char *what, char ***out) {
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok) return false;
  if (!is_array) return throw_type(env, "ERR_INVALID_ARG_TYPE", what, "an array of strings");
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  char **vec = calloc((size_t)n + 1, sizeof *vec);
  if (vec == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, v, i, &item) != napi_ok || !get_cstring(env, item, what, &vec[i])) {
      for (uint32_t j = 0; j < i; j++) free(vec[j]);
      free(vec);
      return false;
    }
  }
  *out = vec;
  return true;
}

static void free_vector(char **vec) {
  if (vec == NULL) return;
  for (char **p = vec; *p != NULL; p++) free(*p);
  free(vec);
}

/*
 * spawn(file, args, env | null, fds, newSession, onExit): starts `file`
 * (an absolute path, or a name looked up in PATH) with argv `args`,
 * environment `env` ("K=V" strings; null for this process's), child fd i taken from fds[i] (-1: /dev/null),
 * every other fd closed, signals at their defaults and unblocked, and, with
 * newSession, in a session of its own. Returns the pid; onExit(code, signal)
 * is called once it has ended and been reaped.
 */
static napi_value Spawn(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv)) return NULL;
  char *file = NULL;
  char **args = NULL, **envp = NULL;
  int *fds = NULL;
  uint32_t nfds = 0;
  napi_value result = NULL;
  napi_valuetype t;
  bool is_array = false, new_session = false;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actions_ready = false, attr_ready = false;
  if (!get_cstring(env, argv[0], "file", &file) || !get_string_vector(env, argv[1], "args", &args)) goto out;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && !get_string_vector(env, argv[2], "env", &envp)) goto out;
  napi_is_array(env, argv[3], &is_array);
  if (!is_array) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "fds", "an array of numbers");
    goto out;
  }
  napi_get_array_length(env, argv[3], &nfds);
  fds = calloc(nfds + 1, sizeof *fds);
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value item;
    napi_get_element(env, argv[3], i, &item);
    if (napi_get_value_int32(env, item, &fds[i]) != napi_ok) {
      throw_type(env, "ERR_INVALID_ARG_TYPE", "fds", "an array of numbers");
      goto out;
    }
  }
  napi_get_value_bool(env, argv[4], &new_session);
  napi_typeof(env, argv[5], &t);
  if (t != napi_function) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "onExit", "a function");
    goto out;
  }

  posix_spawn_file_actions_init(&actions);
  actions_ready = true;
  for (uint32_t i = 0; i < nfds; i++) {
    if (fds[i] < 0) posix_spawn_file_actions_addopen(&actions, (int)i, "/dev/null", O_RDWR, 0);
    else posix_spawn_file_actions_adddup2(&actions, fds[i], (int)i);
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, (int)nfds);
  posix_spawnattr_init(&attr);
  attr_ready = true;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (new_session ? POSIX_SPAWN_SETSID : 0));

  pid_t pid;
  int rc = posix_spawnp(&pid, file, &actions, &attr, args, envp != NULL ? envp : environ);
  if (rc != 0) {
    throw_errno(env, rc, "spawn", argv[0], file);
    goto out;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  exit_watch *w = calloc(1, sizeof *w);
  uv_loop_t *loop = NULL;
  napi_value name;
  if (pidfd < 0 || w == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, pidfd) != 0) {
    int err = pidfd < 0 ? errno : EIO;
    kill(pid, SIGKILL);
    siginfo_t ignored;
    waitid(P_PID, (id_t)pid, &ignored, WEXITED);
    if (pidfd >= 0) close(pidfd);
    free(w);
    throw_errno(env, err, "pidfd_open", argv[0], file);
    goto out;
  }
  w->env = env;
  w->pidfd = pidfd;
  w->pid = pid;
  w->poll.data = w;
  napi_create_reference(env, argv[5], 1, &w->callback);
  napi_create_string_utf8(env, "berth:spawn", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->context);
  uv_poll_start(&w->poll, UV_READABLE, exit_watch_fired);
  napi_create_int32(env, pid, &result);

out:
  if (actions_ready) posix_spawn_file_actions_destroy(&actions);
  if (attr_ready) posix_spawnattr_destroy(&attr);
  free(file);
  free_vector(args);
  free_vector(envp);
  free(fds);
  return result;
}

/*
 * signalProcess(pid, start, signal): sends `signal` to the process `pid`
 * only if it is still the one that started at `start` (field 22 of
 * /proc/<pid>/stat, clock ticks since boot). The process is pinned with a
 * pidfd before its start time is read, so a pid reused in between cannot
 * be signalled. Returns false when that process is gone.
 */
static napi_value SignalProcess(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  unsigned int pid = 0, sig = 0;
  char *start = NULL;
  if (!get_uint(env, argv[0], "pid", 4194304, &pid) || !get_cstring(env, argv[1], "start", &start) || !get_uint(env, argv[2], "signal", 64, &sig)) {
    free(start);
    return NULL;
  }
  bool sent = false;
  int err = 0;
  int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0) : -1;
  if (pidfd >= 0) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n > 0) {
      buf[n] = '\0';
      /* Fields after the command name (which may hold spaces and parentheses): state is field 3, start time field 22. */
      char *close_paren = strrchr(buf, ')');
      char *p = close_paren;
      int field = 2;
      for (; p != NULL && *p != '\0' && field < 22; p++)
        if (*p == ' ') field++;
      if (p != NULL && field == 22) {
        size_t len = strcspn(p, " ");
        bool zombie = close_paren[1] == ' ' && close_paren[2] == 'Z';
        if (!zombie && len == strlen(start) && strncmp(p, start, len) == 0) {
          if (syscall(SYS_pidfd_send_signal, pidfd, (int)sig, NULL, 0) == 0) sent = true;
          else if (errno != ESRCH) err = errno;
        }
      }
    }
    close(pidfd);
  } else if (errno != ESRCH && errno != EINVAL) {
    err = errno;
  }
  free(start);
  if (err != 0) {
    napi_value empty;
    napi_create_string_utf8(env, "", 0, &empty);
    throw_errno(env, err, "pidfd_send_signal", empty, "");
    return NULL;
  }
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, sent, &result));
  return result;
}

/* ------------------------------------------------------------ disk usage */

/* A file with more than one link, counted once however many names it has. */
typedef struct {
  dev_t dev;
  ino_t ino;
  blkcnt_t blocks;
} linked_inode;

/* One walk of a tree for its usage, run on the thread pool. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *root;
  uint64_t blocks, inodes;
  int err;
} usage_call;

static int compare_linked(const void *a, const void *b) {
  const linked_inode *x = a, *y = b;
  if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  return 0;
}

/*
 * Walks `root` without following links or leaving its filesystem, adding up
 * allocated 512-byte blocks (as du counts them) and inodes. Entries that
 * vanish during the walk are skipped; a missing root is an empty tree.
 */
static void usage_execute(napi_env env, void *p) {
  usage_call *c = p;
  char *paths[] = {c->root, NULL};
  FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
  if (fts == NULL) {
    c->err = errno;
    return;
  }
  linked_inode *linked = NULL;
  size_t count = 0, capacity = 0;
  FTSENT *e;
  errno = 0;
  while ((e = fts_read(fts)) != NULL) {
    if (e->fts_info == FTS_DP) continue; /* a directory seen again on the way out */
    if (e->fts_info == FTS_NS || e->fts_info == FTS_ERR) {
      if (e->fts_level == FTS_ROOTLEVEL && e->fts_errno != ENOENT) c->err = e->fts_errno;
      continue;
    }
    const struct stat *st = e->fts_statp;
    if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
      if (count == capacity) {
        size_t next = capacity == 0 ? 64 : capacity * 2;
        linked_inode *grown = realloc(linked, next * sizeof *linked);
        if (grown == NULL) {
          c->err = ENOMEM;
          break;
        }
        linked = grown;
        capacity = next;
      }
      linked[count++] = (linked_inode){st->st_dev, st->st_ino, st->st_blocks};
      continue;
    }
    c->blocks += (uint64_t)st->st_blocks;
    c->inodes += 1;
  }
  if (e == NULL && errno != 0 && c->err == 0) c->err = errno;
  fts_close(fts);
  if (count > 0) qsort(linked, count, sizeof *linked, compare_linked);
  for (size_t i = 0; i < count; i++) {
    if (i > 0 && compare_linked(&linked[i - 1], &linked[i]) == 0) continue;
    c->blocks += (uint64_t)linked[i].blocks;
    c->inodes += 1;
  }
  free(linked);
}

static void usage_call_free(usage_call *c) {
  free(c->root);
  free(c);
}

static void usage_complete(napi_env env, napi_status status, void *p) {
  usage_call *c = p;
  if (status == napi_ok && c->err == 0) {
    napi_value result, bytes, inodes;
    if (napi_create_array_with_length(env, 2, &result) == napi_ok && napi_create_double(env, (double)c->blocks * 512.0, &bytes) == napi_ok &&
        napi_create_double(env, (double)c->inodes, &inodes) == napi_ok && napi_set_element(env, result, 0, bytes) == napi_ok &&
        napi_set_element(env, result, 1, inodes) == napi_ok) {
      napi_resolve_deferred(env, c->deferred, result);
    } else {
      settle(env, c->deferred, napi_ok, ENOMEM, "fts_read", c->root);
    }
  } else {
    settle(env, c->deferred, status, c->err, "fts_read", c->root);
  }
  napi_delete_async_work(env, c->work);
  usage_call_free(c);
}

/* diskUsage(root) -> Promise<[bytes, inodes]> */
static napi_value DiskUsage(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  usage_call *c = new_call(env, sizeof *c);
  if (c == NULL) return NULL;
  if (!get_cstring(env, argv[0], "root", &c->root)) {
    usage_call_free(c);
    return NULL;
  }
  napi_value promise = queue_work(env, "berth:diskUsage", usage_execute, usage_complete, c, &c->deferred, &c->work);
  if (promise == NULL) usage_call_free(c);
  return promise;
}

/* ------------------------------------------------------------------ init */

static napi_value set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  NAPI_CALL(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn));
  NAPI_CALL(env, napi_set_named_property(env, exports, name, fn));
  return exports;
}

static napi_value set_int(napi_env env, napi_value exports, const char *name, int32_t value) {
  napi_value v;
  NAPI_CALL(env, napi_create_int32(env, value, &v));
  NAPI_CALL(env, napi_set_named_property(env, exports, name, v));
  return exports;
}

NAPI_MODULE_INIT() {
  if (!set_fn(env, exports, "mknod", Mknod) ||
      !set_fn(env, exports, "lsetxattr", Lsetxattr) ||
      !set_fn(env, exports, "lgetxattr", Lgetxattr) ||
      !set_fn(env, exports, "llistxattr", Llistxattr) ||
      !set_fn(env, exports, "lremovexattr", Lremovexattr) ||
      !set_fn(env, exports, "mount", Mount) ||
      !set_fn(env, exports, "umount2", Umount2) ||
      !set_fn(env, exports, "mallocTrim", MallocTrim) ||
      !set_fn(env, exports, "diskUsage", DiskUsage) ||
      !set_fn(env, exports, "pinNamespaces", PinNamespaces) ||
      !set_fn(env, exports, "pipe", Pipe) ||
      !set_fn(env, exports, "spawn", Spawn) ||
      !set_fn(env, exports, "signalProcess", SignalProcess) ||
      !set_int(env, exports, "S_IFCHR", S_IFCHR) ||
      !set_int(env, exports, "S_IFBLK", S_IFBLK) ||
      !set_int(env, exports, "S_IFIFO", S_IFIFO) ||
      !layer_register(env, exports) ||
      !hpack_register(env, exports)) {
    return NULL;
  }
  return exports;
}
