/**
 * @berth/native: the filesystem calls Node lacks: for building overlayfs
 * snapshots from image layers, and for mounting root filesystems, pinned
 * namespaces and /dev/shm. A small Node-API addon (csrc/berth_native.c)
 * built by the nx `build` target into build/Release/berth_native.node.
 *
 * Every call is synchronous, like `fs.*Sync`, but {@link mount} and
 * {@link unmount}, which run on Node's thread pool. System errors are thrown the way
 * Node's fs throws them: an `Error` whose message reads
 * `EEXIST: file already exists, mknod '/x'`, with `code` (the errno name),
 * `errno` (negative, as Node reports it), `syscall` and `path` — see
 * {@link NativeFsError}. Arguments of the wrong type throw `TypeError`
 * (`code: 'ERR_INVALID_ARG_TYPE'`), and a path or attribute name containing a
 * NUL byte throws `TypeError` (`code: 'ERR_INVALID_ARG_VALUE'`) rather than
 * being truncated at the NUL.
 */
import { createRequire } from 'node:module';

/** The shape of a system error thrown by this module (as Node's fs errors). */
export interface NativeFsError extends Error {
  /** errno name, e.g. 'EEXIST', 'ENOENT', 'EPERM', 'ENOTSUP'. */
  code: string;
  /** Negative errno, e.g. -17 for EEXIST, as in Node's fs errors. */
  errno: number;
  /** The failing call: 'mknod', 'lsetxattr', 'lgetxattr', 'llistxattr', 'lremovexattr', 'mount', 'umount2', 'unshare' or 'sethostname'. */
  syscall: string;
  /** The path the call was made on. */
  path: string;
}

interface Binding {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  lgetxattr(path: string, name: string): Buffer | undefined;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
  mallocTrim(): boolean;
  pinNamespaces(net: string | null, uts: string | null, ipc: string | null, hostname: string | null): Promise<void>;
  S_IFCHR: number;
  S_IFBLK: number;
  S_IFIFO: number;
}

const ADDON = '../build/Release/berth_native.node';

const load = (): Binding => {
  try {
    return createRequire(import.meta.url)(ADDON) as Binding;
  } catch (err) {
    throw new Error(`@berth/native: cannot load ${new URL(ADDON, import.meta.url).pathname}; build it with \`nx run native:build\``, {
      cause: err,
    });
  }
};

const binding = load();

/** File type bits for a character device (0o020000), for {@link mknod}'s mode. */
export const S_IFCHR: number = binding.S_IFCHR;
/** File type bits for a block device (0o060000), for {@link mknod}'s mode. */
export const S_IFBLK: number = binding.S_IFBLK;
/** File type bits for a named pipe (0o010000), for {@link mknod}'s mode. */
export const S_IFIFO: number = binding.S_IFIFO;

/**
 * Creates a filesystem node with mknod(2). `mode` is the file type bits
 * ({@link S_IFCHR}, {@link S_IFBLK}, {@link S_IFIFO}) or-ed with the permission
 * bits (an integer 0..0xffff; the process umask applies). `major` (0..0xfff)
 * and `minor` (0..0xfffff) form the device number with makedev(3) and are
 * ignored for fifos. Device nodes need CAP_MKNOD.
 *
 * @throws {NativeFsError} e.g. EEXIST if `path` exists, EPERM without CAP_MKNOD.
 * @throws {TypeError} on a non-string path, a path with a NUL byte, or non-number mode/major/minor.
 * @throws {RangeError} when mode, major or minor is not an integer in range.
 */
export function mknod(path: string, mode: number, major: number, minor: number): void {
  binding.mknod(path, mode, major, minor);
}

/**
 * Sets extended attribute `name` (namespaced: 'user.', 'trusted.',
 * 'security.') of `path` to `value`, creating or replacing it. Does not follow
 * a final symlink: the link itself gets the attribute. Note that Linux refuses
 * 'user.' attributes on symlinks (EPERM), and 'trusted.' needs CAP_SYS_ADMIN.
 *
 * @throws {NativeFsError} e.g. ENOENT, EPERM, ENOTSUP (filesystem has no xattrs), E2BIG, ERANGE (bad name).
 * @throws {TypeError} on a non-string path or name, a NUL byte in either, or a value that is not a Buffer/Uint8Array.
 */
export function lsetxattr(path: string, name: string, value: Buffer | Uint8Array): void {
  binding.lsetxattr(path, name, value);
}

/**
 * Reads extended attribute `name` of `path` (not following a final symlink).
 * Returns `undefined` when the attribute does not exist (ENODATA).
 *
 * @throws {NativeFsError} e.g. ENOENT for a missing path, ENOTSUP.
 * @throws {TypeError} on a non-string path or name, or a NUL byte in either.
 */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  return binding.lgetxattr(path, name);
}

/**
 * Lists the extended attribute names of `path` (not following a final
 * symlink). Only names the caller may see are listed ('trusted.' ones need
 * CAP_SYS_ADMIN). Returns `[]` when there are none.
 *
 * @throws {NativeFsError} e.g. ENOENT for a missing path.
 * @throws {TypeError} on a non-string path or a NUL byte in it.
 */
export function llistxattr(path: string): string[] {
  return binding.llistxattr(path);
}

/**
 * Removes extended attribute `name` of `path` (not following a final symlink).
 *
 * @throws {NativeFsError} ENODATA when the attribute does not exist; ENOENT, EPERM, ...
 * @throws {TypeError} on a non-string path or name, or a NUL byte in either.
 */
export function lremovexattr(path: string, name: string): void {
  binding.lremovexattr(path, name);
}

/**
 * Creates an overlayfs whiteout at `path`: a character device 0/0 with no
 * permission bits (`S_IFCHR | 0o000`), as overlayfs itself creates them. In an
 * upper layer it hides the lower layer's entry of the same name. Needs
 * CAP_MKNOD.
 *
 * @throws {NativeFsError} e.g. EEXIST if `path` exists, EPERM without CAP_MKNOD.
 * @throws {TypeError} on a bad path.
 */
export function makeOverlayWhiteout(path: string): void {
  binding.mknod(path, S_IFCHR | 0o000, 0, 0);
}

/** The xattr overlayfs reads to mark an upper directory opaque. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Marks directory `dir` opaque for overlayfs (`trusted.overlay.opaque` = "y"):
 * in an upper layer, it hides every entry of the lower directory of the same
 * name. Needs CAP_SYS_ADMIN (a 'trusted.' attribute).
 *
 * @throws {NativeFsError} e.g. ENOENT, EPERM, ENOTSUP (filesystem without trusted xattrs, e.g. some tmpfs).
 * @throws {TypeError} on a bad path.
 */
export function setOverlayOpaque(dir: string): void {
  binding.lsetxattr(dir, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
}

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MNT_DETACH = 0x2;

const flagWords: Record<string, number> = { ro: MS_RDONLY, rw: 0, nosuid: MS_NOSUID, nodev: MS_NODEV, noexec: MS_NOEXEC, bind: MS_BIND, rbind: MS_BIND | MS_REC };

/**
 * Mounts `source` on `target` with mount(2), on Node's thread pool (a
 * mount(8) process per mount costs 10–25 ms; the call, well under one).
 * `options` are as mount(8) takes them: the flag words (ro, rw, nosuid,
 * nodev, noexec, bind, rbind) become flags, the rest (`lowerdir=…`,
 * `mode=…`) the filesystem's data. A bind mount with flags is a bind then a
 * remount, as the kernel wants it; a failed remount undoes the bind.
 *
 * @throws {NativeFsError} e.g. ENOENT (no target), ENODEV (no such filesystem), EPERM.
 */
export async function mount(source: string, target: string, type: string, options: readonly string[]): Promise<void> {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = flagWords[o];
    if (f === undefined) data.push(o);
    else flags |= f;
  }
  if ((flags & MS_BIND) === 0) {
    await binding.mount(source, target, type, flags, data.length > 0 ? data.join(',') : null);
    return;
  }
  await binding.mount(source, target, null, flags & (MS_BIND | MS_REC), null);
  const rest = flags & ~(MS_BIND | MS_REC);
  if (rest === 0) return;
  try {
    await binding.mount(null, target, null, MS_REMOUNT | MS_BIND | rest, null);
  } catch (err) {
    await unmount(target).catch(() => undefined);
    throw err;
  }
}

/**
 * Unmounts `target` with umount2(2), on Node's thread pool. Resolves false
 * when nothing is mounted there or the path is gone. A busy mount (a process
 * still using it) is detached: the kernel frees it when its last user goes.
 *
 * @throws {NativeFsError} e.g. EPERM.
 */
export async function unmount(target: string): Promise<boolean> {
  try {
    await binding.umount2(target, 0);
    return true;
  } catch (err) {
    const code = (err as NativeFsError).code;
    if (code === 'EINVAL' || code === 'ENOENT') return false;
    if (code !== 'EBUSY') throw err;
    await binding.umount2(target, MNT_DETACH);
    return true;
  }
}

/** Where to pin each new namespace (an existing file each), and the hostname for a new UTS namespace. */
export interface NamespacePins {
  net?: string;
  uts?: string;
  ipc?: string;
  hostname?: string;
}

/**
 * New network, UTS and IPC namespaces (those given a path), each
 * bind-mounted onto its path so it outlives every process (a pod's
 * namespaces, made before any of its processes), with the hostname set in
 * the new UTS namespace. unshare(2) runs on a thread of its own, made and
 * ended for the call, so no thread of this process ever enters them; an
 * `unshare` process did the same in 10–15 ms. On failure, the pins already
 * made are unmounted.
 *
 * @throws {NativeFsError} naming the failing call (unshare, sethostname, mount) and, for a mount, its path.
 * @throws {TypeError} when nothing is to be pinned, or a hostname comes without a UTS path.
 */
export async function pinNamespaces(pins: NamespacePins): Promise<void> {
  try {
    await binding.pinNamespaces(pins.net ?? null, pins.uts ?? null, pins.ipc ?? null, pins.hostname ?? null);
  } catch (err) {
    if (!(err instanceof TypeError)) for (const p of [pins.net, pins.uts, pins.ipc]) if (p !== undefined) await unmount(p).catch(() => undefined);
    throw err;
  }
}

/**
 * Returns the free pages of glibc's malloc arenas to the kernel
 * (malloc_trim(3)). Node's start-up leaves tens of megabytes freed but
 * resident (WebAssembly compilation, module loading on helper threads); a
 * service calls this once it is serving. Returns whether memory was released.
 */
export function mallocTrim(): boolean {
  return binding.mallocTrim();
}
