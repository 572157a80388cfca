import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';

type HeaderArg = Partial<Header> & Pick<Header, 'name'>;
import { MediaType, nodePlatform, sha256Digest, type Descriptor, type ImageConfig, type ImageManifest, type ImageRuntimeConfig, type Platform } from '@berth/spec';

/** One entry of a layer: a file (with content, or read from `source`), a directory, a link. */
export type LayerEntry =
  | { type: 'file'; path: string; mode?: number; uid?: number; gid?: number; content?: Uint8Array | string; source?: string; mtime?: Date }
  | { type: 'dir'; path: string; mode?: number; uid?: number; gid?: number; mtime?: Date }
  | { type: 'symlink'; path: string; target: string; uid?: number; gid?: number; mtime?: Date }
  | { type: 'link'; path: string; target: string };

/** A built image: its manifest, config, and every blob by digest. */
export interface BuiltImage {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  config: ImageConfig;
  configDigest: string;
  blobs: Map<string, Buffer>;
}

const epoch = new Date('2020-01-01T00:00:00Z');

/** An uncompressed tar of the entries, in order (parents must come before children). */
export async function tarLayer(entries: LayerEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  // A hard link's header carries its target's mode and owner, as tar writes them (unpackers may apply it to the shared inode).
  const files = new Map<string, { mode: number; uid: number; gid: number }>();
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    let header: HeaderArg;
    let body: Buffer | undefined;
    switch (e.type) {
      case 'file': {
        body = e.source !== undefined ? await readFile(e.source) : Buffer.from(e.content ?? '');
        header = { name, type: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? epoch, size: body.length };
        files.set(name, { mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0 });
        break;
      }
      case 'dir':
        header = { name: `${name}/`, type: 'directory', mode: e.mode ?? 0o755, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? epoch };
        break;
      case 'symlink':
        header = { name, type: 'symlink', linkname: e.target, mode: 0o777, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? epoch };
        break;
      case 'link':
        header = { name, type: 'link', linkname: e.target.replace(/^\/+/, ''), ...(files.get(e.target.replace(/^\/+/, '')) ?? { mode: 0o644 }), mtime: epoch };
        break;
    }
    await new Promise<void>((resolve, reject) => {
      const callback = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body === undefined) p.entry(header, callback);
      else p.entry(header, body, callback);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface BuildImageOptions {
  layers: LayerEntry[][];
  config?: ImageRuntimeConfig;
  platform?: Platform;
  /** Compress layers with gzip (the default), zstd (Debian's zstd tool) or not at all. */
  compression?: 'gzip' | 'zstd' | 'none';
  created?: string;
}

/** Builds an OCI image in memory: layers, config (with diff_ids) and manifest. */
export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  const platform = options.platform ?? nodePlatform();
  const blobs = new Map<string, Buffer>();
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const entries of options.layers) {
    const tar = await tarLayer(entries);
    diffIds.push(sha256Digest(tar));
    const compression = options.compression ?? 'gzip';
    const blob = compression === 'none' ? tar : compression === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 30 }) : gzipSync(tar);
    const digest = sha256Digest(blob);
    blobs.set(digest, blob);
    const mediaType = compression === 'none' ? MediaType.ociLayer : compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayerGzip;
    layers.push({ mediaType, digest, size: blob.length });
  }
  const config: ImageConfig = {
    created: options.created ?? epoch.toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    config: options.config ?? {},
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map(() => ({ created: epoch.toISOString(), created_by: 'berth image builder' })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256Digest(configBytes);
  blobs.set(configDigest, configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
    layers,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256Digest(manifestBytes);
  blobs.set(manifestDigest, manifestBytes);
  return { manifest, manifestBytes, manifestDigest, config, configDigest, blobs };
}
