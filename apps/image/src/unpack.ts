import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { FailedPreconditionError, InvalidArgumentError } from '@berth/errors';
import { describeExit, lsetxattr, makeOverlayWhiteout, mknod, S_IFBLK, S_IFCHR, S_IFIFO, setOverlayOpaque, spawnProcess, type SpawnedProcess } from '@berth/native';
import type { LayerCompression } from '@berth/spec';

export interface ApplyOptions {
  compression: LayerCompression;
  /** Refuse a layer that decompresses to more than this many bytes. */
  maxUncompressedBytes: number;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar: must equal the config's diff_id. */
  diffId: string;
  uncompressedBytes: number;
}

/**
 * A zstd decompressing stream: Debian's `zstd` tool in a child process (the
 * reference implementation, native speed, on the other core), with its
 * window memory capped so a crafted frame cannot ask for gigabytes.
 */
function zstdDecompressor(): Duplex {
  let child: SpawnedProcess;
  try {
    child = spawnProcess('zstd', ['-d', '-c', '-q', '--memory=256MB'], { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const failed = new PassThrough();
    failed.destroy(new InvalidArgumentError(`zstd is not available: ${(err as Error).message}`));
    return failed;
  }
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-500)));
  // The output ends only once zstd has exited and said it succeeded: a
  // corrupt frame must fail the layer, not read as a short one.
  const out = new PassThrough();
  child.stdout!.pipe(out, { end: false });
  const duplex = Duplex.from({ writable: child.stdin!, readable: out });
  void child.closed.then((exit) => {
    if (exit.code === 0) out.end();
    else out.destroy(new FailedPreconditionError(`zstd layer does not decompress: ${stderr.trim() || describeExit(exit)}`));
  });
  duplex.once('close', () => child.kill());
  return duplex;
}

/** The path components of a tar entry name, refusing anything that climbs out of the root. */
export function safeComponents(name: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new FailedPreconditionError(`layer entry ${JSON.stringify(name.slice(0, 200))} escapes the root`);
  if (parts.some((p) => p.includes('\0'))) throw new FailedPreconditionError('layer entry name contains a NUL byte');
  return parts;
}

/** Files up to this size are gathered and written in one call; larger ones are streamed. */
const smallFileBytes = 1024 * 1024;

/**
 * The directories of one layer's tree known to be real directories (made or
 * checked by this unpack), so each is checked once, not once per entry
 * below it. Whatever replaces a directory drops it and everything under it.
 */
class KnownDirs {
  private readonly dirs = new Set<string>();

  constructor(private readonly root: string) {
    this.dirs.add(root);
  }

  has(dir: string): boolean {
    return this.dirs.has(dir);
  }

  add(dir: string): void {
    this.dirs.add(dir);
  }

  /** `path` is no longer a directory: neither it nor anything under it is known. */
  forget(path: string): void {
    if (!this.dirs.delete(path)) return;
    const prefix = `${path}/`;
    for (const d of this.dirs) if (d.startsWith(prefix)) this.dirs.delete(d);
  }

  /**
   * Makes sure every parent directory of `parts` exists under the root as a
   * real directory — never a symlink, so no entry can be written through one
   * to a place outside the layer.
   */
  ensureParents(parts: string[]): void {
    let dir = this.root;
    for (const p of parts.slice(0, -1)) {
      dir = join(dir, p);
      if (this.dirs.has(dir)) continue;
      const st = lstatSync(dir, { throwIfNoEntry: false });
      if (st === undefined) mkdirSync(dir, { mode: 0o755 });
      else if (st.isSymbolicLink()) throw new FailedPreconditionError(`layer entry goes through the symlink ${dir.slice(this.root.length)}`);
      else if (!st.isDirectory()) throw new FailedPreconditionError(`layer entry needs ${dir.slice(this.root.length)} to be a directory`);
      this.dirs.add(dir);
    }
  }

  /** Removes what stands at `path` unless it is a directory and a directory is wanted. */
  clear(path: string, keepDirectory: boolean): void {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined || (keepDirectory && st.isDirectory())) return;
    rmSync(path, { recursive: true, force: true });
    this.forget(path);
  }
}

/** An entry's whole content, for a small file. */
async function gather(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/**
 * Applies one layer (an OCI changeset tar, compressed or not) to `root`, the
 * upper directory of an active overlay snapshot: files, directories,
 * symlinks, hard links (to entries of the same layer), devices, fifos,
 * ownership, modes (setuid included), mtimes and xattrs; OCI whiteouts become
 * overlay whiteouts (`.wh.x` → a 0/0 character device; `.wh..wh..opq` → the
 * opaque xattr). Entries that climb out of the root, through a symlink, or to
 * a hard-link target outside the layer are refused; so is a layer that
 * decompresses to more than maxUncompressedBytes. Returns the diff ID.
 *
 * Metadata calls (lstat, mkdir, symlink, chown, chmod, utimes) and the
 * writes of small files are synchronous: each takes microseconds, where a
 * trip through libuv's four-thread pool waits behind the megabyte writes of
 * downloads and other layers (the small-file layer of a big image took 2 s
 * that way, 0.1 s alone).
 */
export async function applyLayer(blob: Readable, root: string, options: ApplyOptions): Promise<ApplyResult> {
  const hash = createHash('sha256');
  let uncompressedBytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      uncompressedBytes += chunk.length;
      if (uncompressedBytes > options.maxUncompressedBytes) {
        cb(new FailedPreconditionError(`layer decompresses to more than ${options.maxUncompressedBytes} bytes; refusing it`));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const tar = extract();
  const known = new KnownDirs(root);
  const dirTimes: Array<[string, Date]> = [];
  const consume = (async () => {
    for await (const entry of tar) {
      const h = entry.header;
      const parts = safeComponents(h.name);
      if (parts.length === 0) {
        entry.resume();
        continue;
      }
      known.ensureParents(parts);
      const base = parts[parts.length - 1]!;
      const path = join(root, ...parts);
      if (base === '.wh..wh..opq') {
        setOverlayOpaque(join(root, ...parts.slice(0, -1)));
        entry.resume();
        continue;
      }
      if (base.startsWith('.wh.')) {
        const target = join(root, ...parts.slice(0, -1), base.slice(4));
        known.clear(target, false);
        makeOverlayWhiteout(target);
        entry.resume();
        continue;
      }
      known.clear(path, h.type === 'directory');
      const mode = (h.mode ?? 0o644) & 0o7777;
      switch (h.type) {
        case 'file':
        case 'contiguous-file':
          if ((h.size ?? 0) <= smallFileBytes) writeFileSync(path, await gather(entry), { mode: 0o600 });
          else await pipeline(entry, createWriteStream(path, { mode: 0o600 }));
          break;
        case 'directory':
          mkdirSync(path, { recursive: true, mode: 0o700 });
          known.add(path);
          entry.resume();
          break;
        case 'symlink':
          symlinkSync(h.linkname ?? '', path);
          entry.resume();
          break;
        case 'link': {
          const target = safeComponents(h.linkname ?? '');
          known.ensureParents(target);
          const source = join(root, ...target);
          const st = lstatSync(source, { throwIfNoEntry: false });
          if (st === undefined) throw new FailedPreconditionError(`hard link ${JSON.stringify(h.name.slice(0, 200))} points outside this layer`);
          if (st.isDirectory()) throw new FailedPreconditionError(`hard link ${JSON.stringify(h.name.slice(0, 200))} points at a directory`);
          linkSync(source, path);
          entry.resume();
          continue; // a hard link shares its target's metadata
        }
        case 'character-device':
        case 'block-device':
          mknod(path, (h.type === 'block-device' ? S_IFBLK : S_IFCHR) | mode, h.devmajor ?? 0, h.devminor ?? 0);
          entry.resume();
          break;
        case 'fifo':
          mknod(path, S_IFIFO | mode, 0, 0);
          entry.resume();
          break;
        default:
          // pax headers and the like carry nothing to create
          entry.resume();
          continue;
      }
      lchownSync(path, h.uid ?? 0, h.gid ?? 0);
      if (h.type !== 'symlink') chmodSync(path, mode);
      const pax = (h as { pax?: Record<string, string> | null }).pax;
      for (const [key, value] of Object.entries(pax ?? {})) {
        if (key.startsWith('SCHILY.xattr.')) lsetxattr(path, key.slice('SCHILY.xattr.'.length), Buffer.from(value, 'binary'));
      }
      const mtime = h.mtime ?? new Date(0);
      if (h.type === 'directory') dirTimes.push([path, mtime]);
      else lutimesSync(path, mtime, mtime);
    }
  })();
  const decompress = options.compression === 'gzip' ? [createGunzip({ chunkSize: 256 * 1024 })] : options.compression === 'zstd' ? [zstdDecompressor()] : [];
  const source = [blob, ...decompress, meter, tar];
  await Promise.all([pipeline(source as [Readable, ...NodeJS.ReadWriteStream[]]), consume]);
  // Directory times last: writing into a directory changes its mtime.
  for (const [path, mtime] of dirTimes.reverse()) utimesSync(path, mtime, mtime);
  return { diffId: `sha256:${hash.digest('hex')}`, uncompressedBytes };
}
