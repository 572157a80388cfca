/**
 * @berth/native: the filesystem calls Node lacks: for building overlayfs
 * snapshots from image layers, and for mounting root filesystems, pinned
 * namespaces and /dev/shm. A small Node-API addon (csrc/berth_native.c)
 * built by the nx `build` target into build/Release/berth_native.node.
 *
 * Every call is synchronous, like `fs.*Sync`, but {@link mount},
 * {@link unmount} and {@link diskUsage}, which run on Node's thread pool. System errors are thrown the way
 * Node's fs throws them: an `Error` whose message reads
 * `EEXIST: file already exists, mknod '/x'`, with `code` (the errno name),
 * `errno` (negative, as Node reports it), `syscall` and `path` — see
 * {@link NativeFsError}. Arguments of the wrong type throw `TypeError`
 * (`code: 'ERR_INVALID_ARG_TYPE'`), and a path or attribute name containing a
 * NUL byte throws `TypeError` (`code: 'ERR_INVALID_ARG_VALUE'`) rather than
 * being truncated at the NUL.
 */
import { createRequire } from 'node:module';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';

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
  diskUsage(root: string): Promise<[number, number]>;
  pinNamespaces(net: string | null, uts: string | null, ipc: string | null, hostname: string | null): Promise<void>;
  pipe(): [number, number];
  signalProcess(pid: number, start: string, signal: number): boolean;
  spawn(file: string, args: string[], env: string[] | null, fds: number[], newSession: boolean, onExit: (code: number | null, signal: number | null) => void): number;
  applierOpen(root: string, compression: number, maxBytes: number, onEvent: (kind: number, text?: string, bytes?: number, layerFault?: boolean, code?: string) => void): object;
  applierPush(handle: object, chunks: Uint8Array[] | null): boolean;
  applierAbort(handle: object): void;
  authorityRewriterOpen(replacement: string): object;
  authorityRewrite(handle: object, block: Uint8Array): [Buffer, boolean];
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

/**
 * The mount points a mountinfo file lists (`/proc/<pid>/mountinfo`'s text,
 * field 5 of each line), in its order, with the octal escapes of space, tab,
 * newline and backslash undone.
 */
export function mountPoints(mountinfo: string): string[] {
  const points: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined) points.push(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  }
  return points;
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
 * the new UTS namespace and the loopback interface up in the new network
 * namespace. unshare(2) runs on a thread of its own, made and
 * ended for the call, so no thread of this process ever enters them; an
 * `unshare` process did the same in 10–15 ms. On failure, the pins already
 * made are unmounted.
 *
 * @throws {NativeFsError} naming the failing call (unshare, sethostname, loopback up, mount) and, for a mount, its path.
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
 * The disk usage of the tree under `root`: allocated bytes (blocks of 512,
 * as du counts them) and inodes, each inode counted once however many hard
 * links it has. Links are not followed and other filesystems mounted inside
 * are not entered. The whole walk is one call on Node's thread pool (fts(3)),
 * not a stat per file through it. Entries removed during the walk are
 * skipped; a missing root counts as empty.
 *
 * @throws {NativeFsError} when the tree cannot be read (e.g. EACCES on the root).
 */
export async function diskUsage(root: string): Promise<{ bytes: number; inodes: number }> {
  const [bytes, inodes] = await binding.diskUsage(root);
  return { bytes, inodes };
}

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** An applied layer: its diff ID (sha256 of the uncompressed tar) and uncompressed size. */
export interface LayerApplyResult {
  diffId: string;
  uncompressedBytes: number;
}

/** A layer that could not be applied: `layerFault` says the layer's content is to blame (hostile or corrupt), not the node. */
export interface LayerApplyError extends Error {
  layerFault: boolean;
  /** The errno name of a system failure (e.g. 'ENOSPC'), when there was one. */
  code?: string;
}

/**
 * Applies an image layer (a tar, compressed or not) to `root`, natively: the
 * bytes pushed are handed to a thread of the applier's own (csrc/layer.c),
 * which decompresses (zlib, libzstd), hashes and extracts them with
 * libarchive while JS reads the next ones. {@link done} gives the
 * {@link LayerApplyResult}.
 *
 * Entries that climb out of the root or go through a symlink, hard links to
 * anything but a non-directory of this layer, and a layer past `maxBytes`
 * uncompressed are refused; OCI whiteouts become overlay whiteouts.
 *
 * The pushed chunks are not copied: the applier holds them until the thread
 * is done with them, and they must not be changed meanwhile.
 */
export class LayerApplier {
  /** Settles once the thread has stopped: the result, or a {@link LayerApplyError}. */
  readonly done: Promise<LayerApplyResult>;
  private readonly handle: object;
  /** The batches the thread may still read: the one it is applying and the one waiting. */
  private held: Uint8Array[][] = [];
  private taken: (() => void) | undefined;
  private finished = false;

  constructor(root: string, compression: LayerCompression, maxBytes: number) {
    let resolveDone!: (r: LayerApplyResult) => void;
    let rejectDone!: (e: Error) => void;
    this.done = new Promise((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    this.done.catch(() => undefined);
    this.handle = binding.applierOpen(root, compression === 'gzip' ? 1 : compression === 'zstd' ? 2 : 0, maxBytes, (kind, text, bytes, layerFault, code) => {
      if (kind === 0) {
        // The newest batch was taken: the ones before it are done with.
        this.held = this.held.slice(-1);
      } else {
        this.finished = true;
        this.held = [];
        if (kind === 1) resolveDone({ diffId: `sha256:${text}`, uncompressedBytes: bytes! });
        else {
          const err = new Error(text) as LayerApplyError;
          err.layerFault = layerFault === true;
          if (code !== undefined) err.code = code;
          rejectDone(err);
        }
      }
      const wake = this.taken;
      this.taken = undefined;
      wake?.();
    });
  }

  /** True once the thread has stopped (the layer is applied or failed): further pushes are dropped. */
  get ended(): boolean {
    return this.finished;
  }

  /** Hands a batch over; resolves once the thread has taken it, or has ended. */
  async push(chunks: Uint8Array[]): Promise<void> {
    // The thread ignores a batch with no bytes (and would never report it taken).
    if (this.finished || chunks.every((c) => c.byteLength === 0)) return;
    if (this.taken !== undefined) throw new Error('LayerApplier.push: the previous push has not been taken yet');
    this.held.push(chunks);
    if (!binding.applierPush(this.handle, chunks)) throw new Error('LayerApplier.push: the applier refused the batch');
    await new Promise<void>((resolve) => (this.taken = resolve));
  }

  /** Ends the input and waits for the result. */
  end(): Promise<LayerApplyResult> {
    if (!this.finished) binding.applierPush(this.handle, null);
    return this.done;
  }

  /** Stops the thread and waits until it has: nothing more is written under the root. */
  async abort(): Promise<void> {
    if (!this.finished) binding.applierAbort(this.handle);
    await this.done.catch(() => undefined);
  }
}

/** Applies a layer from a source of chunks with a {@link LayerApplier}; when the source fails, its error is thrown once the thread has stopped. */
export async function applyLayerChunks(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, root: string, compression: LayerCompression, maxBytes: number): Promise<LayerApplyResult> {
  const applier = new LayerApplier(root, compression, maxBytes);
  try {
    for await (const chunk of chunks) {
      if (applier.ended) break;
      await applier.push([chunk]);
    }
  } catch (err) {
    await applier.abort();
    throw err;
  }
  return await applier.end();
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

/** What a child's fd is: a new pipe to this process, /dev/null, or an fd of this process. */
export type StdioSpec = 'pipe' | 'ignore' | number;

export interface SpawnOptions {
  /** The child's environment (this process's when left out). */
  env?: NodeJS.ProcessEnv;
  /** Entry i is the child's fd i; fds past the list are closed. Default: all three ignored. */
  stdio?: StdioSpec[];
  /** Starts the child in a session of its own (setsid), as `detached` does for child_process. */
  newSession?: boolean;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  readonly pid: number;
  /** This process's end of each 'pipe' entry, by the child's fd: writable for fd 0, readable for the others. */
  readonly stdio: (Socket | undefined)[];
  readonly stdin: Socket | undefined;
  readonly stdout: Socket | undefined;
  readonly stderr: Socket | undefined;
  /** Settles once the process has ended and been reaped. */
  readonly exited: Promise<ProcessExit>;
  /** Settles once it has also closed every pipe it writes to (child_process's 'close'): all its output has been read. */
  readonly closed: Promise<ProcessExit>;
  /** Signals the process unless it has already been reaped; returns whether a signal was sent. */
  kill(signal?: NodeJS.Signals | number): boolean;
}

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/**
 * Starts a program without fork(2)'s cost. Node's child_process forks, which
 * copies the page tables of the whole process while the event loop waits:
 * 5 ms for a 45 MiB process and 12 ms at 150 MiB here, for every runc and
 * CNI plugin call. This uses posix_spawn(3) (clone with CLONE_VM |
 * CLONE_VFORK: nothing is copied) and watches the exit on a pidfd. Signals
 * start at their defaults (Node ignores SIGPIPE) and unblocked; every fd
 * past `stdio` is closed in the child.
 *
 * @throws {NativeFsError} (syscall 'spawn') when the program cannot be run, e.g. ENOENT.
 */
export function spawnProcess(file: string, args: readonly string[], options: SpawnOptions = {}): SpawnedProcess {
  const specs = options.stdio ?? ['ignore', 'ignore', 'ignore'];
  const childFds: number[] = [];
  const ours: (number | undefined)[] = [];
  const toClose: number[] = [];
  try {
    for (const [i, spec] of specs.entries()) {
      if (spec === 'pipe') {
        const [r, w] = binding.pipe();
        childFds.push(i === 0 ? r : w);
        ours.push(i === 0 ? w : r);
        toClose.push(i === 0 ? r : w);
      } else {
        childFds.push(spec === 'ignore' ? -1 : spec);
        ours.push(undefined);
      }
    }
  } catch (err) {
    for (const fd of [...toClose, ...ours]) if (fd !== undefined) closeSync(fd);
    throw err;
  }
  const env = options.env === undefined ? null : Object.entries(options.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  let reaped = false;
  let onExit!: (exit: ProcessExit) => void;
  const exited = new Promise<ProcessExit>((resolve) => (onExit = resolve));
  let pid: number;
  try {
    pid = binding.spawn(file, [file, ...args], env, childFds, options.newSession === true, (code, signal) => {
      reaped = true;
      onExit({ code, signal: signal === null ? null : (signalNames.get(signal) ?? null) });
    });
  } catch (err) {
    for (const fd of ours) if (fd !== undefined) closeSync(fd);
    throw err;
  } finally {
    for (const fd of toClose) closeSync(fd);
  }
  const stdio = ours.map((fd, i) => {
    if (fd === undefined) return undefined;
    const socket = new Socket({ fd, readable: i !== 0, writable: i === 0 });
    // A pipe's error (EPIPE: the child closed its end) is followed by 'close'; unheard, it would end this process.
    socket.on('error', () => undefined);
    return socket;
  });
  const outputsClosed = stdio.slice(1).flatMap((s) => (s === undefined ? [] : [new Promise((resolve) => s.once('close', resolve))]));
  return {
    pid,
    stdio,
    stdin: stdio[0],
    stdout: stdio[1],
    stderr: stdio[2],
    exited,
    closed: Promise.all([exited, ...outputsClosed]).then(([exit]) => exit),
    kill(signal: NodeJS.Signals | number = 'SIGTERM') {
      if (reaped) return false;
      process.kill(pid, signal);
      return true;
    },
  };
}

/** How a process ended, for an error message: `exit status 3` or `ended by SIGKILL`. */
export function describeExit(exit: ProcessExit): string {
  return exit.code === null ? `ended by ${exit.signal}` : `exit status ${exit.code}`;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** SIGKILL after this long (and `timedOut` set); the output pipes are then closed even if a process it started holds them. */
  timeoutMs?: number;
  /** What the timeout does instead of SIGKILL to the process (e.g. kill what it runs); `timedOut` is set unless it returns false (nothing left to kill). */
  onTimeout?: (child: SpawnedProcess) => boolean | void;
  /** Output kept per stream; the rest is dropped (and `truncated` set). Default 16 MiB. */
  maxOutput?: number;
}

export interface RunResult extends ProcessExit {
  stdout: Buffer;
  stderr: Buffer;
  timedOut: boolean;
  truncated: boolean;
}

/** Runs a program to its end (see {@link spawnProcess}) and collects its output; a non-zero exit is a result, not an error. */
export async function runProcess(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawnProcess(file, args, { ...(options.env === undefined ? {} : { env: options.env }), stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  const max = options.maxOutput ?? 16 * 1024 * 1024;
  let truncated = false;
  const collect = (stream: Socket | undefined): Promise<Buffer> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      if (stream === undefined) return resolve(Buffer.alloc(0));
      stream.on('data', (d: Buffer) => {
        if (size + d.length > max) {
          truncated = true;
          d = d.subarray(0, Math.max(0, max - size));
        }
        size += d.length;
        if (d.length > 0) chunks.push(d);
      });
      stream.on('error', () => resolve(Buffer.concat(chunks)));
      stream.on('close', () => resolve(Buffer.concat(chunks)));
    });
  if (options.input !== undefined) child.stdin?.end(options.input);
  let timedOut = false;
  const onTimeout = options.onTimeout ?? ((c: SpawnedProcess) => c.kill('SIGKILL'));
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => (timedOut = onTimeout(child) !== false), options.timeoutMs);
  const output = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const exit = await child.exited;
  clearTimeout(timer);
  // A process it started may still hold the pipes: after a timeout they are closed from this end.
  if (timedOut) for (const s of [child.stdout, child.stderr]) s?.destroy();
  const [stdout, stderr] = await output;
  return { ...exit, stdout, stderr, timedOut, truncated };
}

/**
 * Sends `signal` to process `pid` only while it is the process that started
 * at `start` (field 22 of /proc/<pid>/stat, as recorded when it was
 * started): a pid reused by another process is never signalled. Returns
 * false when that process has ended (a zombie counts as ended). Signalling a
 * container's process this way costs no runtime process (`runc kill` is a
 * Go program of some 20 ms here).
 */
export function signalProcess(pid: number, start: string, signal: NodeJS.Signals): boolean {
  const n = constants.signals[signal];
  if (n === undefined) throw new TypeError(`unknown signal ${signal}`);
  return binding.signalProcess(pid, start, n);
}

/**
 * Re-encodes the HTTP/2 header blocks one client sends, replacing an
 * `:authority` that Node's HTTP/2 server (nghttp2) would refuse, such as the
 * socket path gRPC-Go sends on a unix socket, with `replacement`. It holds
 * the HPACK states of one connection (the client's, decoded, and its own,
 * encoded), so it must see every header block of that connection, in order,
 * and the server must see only what it returns. Every other field, its
 * order and its never-index flag are kept.
 */
export class AuthorityRewriter {
  private readonly handle: object;

  constructor(replacement: string) {
    this.handle = binding.authorityRewriterOpen(replacement);
  }

  /**
   * One whole header block (a HEADERS fragment with its CONTINUATIONs, no
   * padding or priority) encoded again, and whether its authority was
   * replaced. Throws an Error with code 'EPROTO' for a block that does not
   * decode or decodes to more than 256 KiB or 1024 fields; the connection
   * cannot go on after that.
   */
  rewrite(block: Uint8Array): { block: Buffer; replaced: boolean } {
    const [encoded, replaced] = binding.authorityRewrite(this.handle, block);
    return { block: encoded, replaced };
  }
}
