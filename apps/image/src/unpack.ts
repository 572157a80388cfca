import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { FailedPreconditionError, InvalidArgumentError } from '@berth/errors';
import { lsetxattr, makeOverlayWhiteout, mknod, S_IFBLK, S_IFCHR, S_IFIFO, setOverlayOpaque } from '@berth/native';
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
  const child = spawn('zstd', ['-d', '-c', '-q', '--memory=256MB'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-500)));
  // The output ends only once zstd has exited and said it succeeded: a
  // corrupt frame must fail the layer, not read as a short one.
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  child.once('error', (err) => duplex.destroy(new InvalidArgumentError(`zstd is not available: ${err.message}`)));
  child.once('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new FailedPreconditionError(`zstd layer does not decompress: ${stderr.trim() || `exit ${code}`}`));
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

/**
 * Makes sure every parent directory of `parts` exists under `root` as a real
 * directory — never a symlink, so no entry can be written through one to a
 * place outside the layer.
 */
async function ensureParents(root: string, parts: string[]): Promise<void> {
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = join(dir, p);
    let st;
    try {
      st = await lstat(dir);
    } catch {
      await mkdir(dir, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink()) throw new FailedPreconditionError(`layer entry goes through the symlink ${dir.slice(root.length)}`);
    if (!st.isDirectory()) throw new FailedPreconditionError(`layer entry needs ${dir.slice(root.length)} to be a directory`);
  }
}

/** Removes what stands at `path` unless it is a directory and a directory is wanted. */
async function clear(path: string, keepDirectory: boolean): Promise<void> {
  try {
    const st = await lstat(path);
    if (keepDirectory && st.isDirectory()) return;
    await rm(path, { recursive: true, force: true });
  } catch {
    // nothing there
  }
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
  const dirTimes: Array<[string, Date]> = [];
  const consume = (async () => {
    for await (const entry of tar) {
      const h = entry.header;
      const parts = safeComponents(h.name);
      if (parts.length === 0) {
        entry.resume();
        continue;
      }
      await ensureParents(root, parts);
      const base = parts[parts.length - 1]!;
      const path = join(root, ...parts);
      if (base === '.wh..wh..opq') {
        setOverlayOpaque(join(root, ...parts.slice(0, -1)));
        entry.resume();
        continue;
      }
      if (base.startsWith('.wh.')) {
        const target = join(root, ...parts.slice(0, -1), base.slice(4));
        await clear(target, false);
        makeOverlayWhiteout(target);
        entry.resume();
        continue;
      }
      await clear(path, h.type === 'directory');
      const mode = (h.mode ?? 0o644) & 0o7777;
      switch (h.type) {
        case 'file':
        case 'contiguous-file':
          await pipeline(entry, createWriteStream(path, { mode: 0o600 }));
          break;
        case 'directory':
          await mkdir(path, { recursive: true, mode: 0o700 });
          entry.resume();
          break;
        case 'symlink':
          await symlink(h.linkname ?? '', path);
          entry.resume();
          break;
        case 'link': {
          const target = safeComponents(h.linkname ?? '');
          await ensureParents(root, target);
          const source = join(root, ...target);
          let st;
          try {
            st = await lstat(source);
          } catch {
            throw new FailedPreconditionError(`hard link ${JSON.stringify(h.name.slice(0, 200))} points outside this layer`);
          }
          if (st.isDirectory()) throw new FailedPreconditionError(`hard link ${JSON.stringify(h.name.slice(0, 200))} points at a directory`);
          await link(source, path);
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
      await lchown(path, h.uid ?? 0, h.gid ?? 0);
      if (h.type !== 'symlink') await chmod(path, mode);
      const pax = (h as { pax?: Record<string, string> | null }).pax;
      for (const [key, value] of Object.entries(pax ?? {})) {
        if (key.startsWith('SCHILY.xattr.')) lsetxattr(path, key.slice('SCHILY.xattr.'.length), Buffer.from(value, 'binary'));
      }
      const mtime = h.mtime ?? new Date(0);
      if (h.type === 'directory') dirTimes.push([path, mtime]);
      else await lutimes(path, mtime, mtime);
    }
  })();
  const decompress = options.compression === 'gzip' ? [createGunzip({ chunkSize: 256 * 1024 })] : options.compression === 'zstd' ? [zstdDecompressor()] : [];
  const source = [blob, ...decompress, meter, tar];
  await Promise.all([pipeline(source as [Readable, ...NodeJS.ReadWriteStream[]]), consume]);
  // Directory times last: writing into a directory changes its mtime.
  for (const [path, mtime] of dirTimes.reverse()) await utimes(path, mtime, mtime);
  return { diffId: `sha256:${hash.digest('hex')}`, uncompressedBytes };
}
