import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@berth/errors';
import { MediaType, parseDigest, refNameAnnotation, sha256Digest, type ImageIndex } from '@berth/spec';
import type { BuiltImage } from './build.js';

/**
 * Writes an image as an OCI image layout (oci-layout, index.json,
 * blobs/<alg>/<hex>) with `refName` as the reference annotation. Adds to an
 * existing layout's index rather than replacing it.
 */
export async function writeOciLayout(dir: string, image: BuiltImage, refName: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const [digest, bytes] of image.blobs) {
    const { algorithm, hex } = parseDigest(digest);
    await writeFile(join(dir, 'blobs', algorithm, hex), bytes);
  }
  let index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  } catch {
    // a new layout
  }
  index.manifests = index.manifests.filter((m) => m.annotations?.[refNameAnnotation] !== refName);
  index.manifests.push({ mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: image.manifestBytes.length, annotations: { [refNameAnnotation]: refName } });
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

/** Reads back an image written by writeOciLayout, verifying every blob's digest. */
export async function readOciLayout(dir: string, refName: string): Promise<{ manifestDigest: string; blobs: Map<string, Buffer> }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  const entry = index.manifests.find((m) => m.annotations?.[refNameAnnotation] === refName);
  if (entry === undefined) throw new InvalidArgumentError(`no image named ${refName} in ${dir}`);
  const blobs = new Map<string, Buffer>();
  const load = async (digest: string): Promise<Buffer> => {
    const { algorithm, hex } = parseDigest(digest);
    const bytes = await readFile(join(dir, 'blobs', algorithm, hex));
    if (sha256Digest(bytes) !== digest) throw new InvalidArgumentError(`blob ${digest} in ${dir} does not match its digest`);
    blobs.set(digest, bytes);
    return bytes;
  };
  const manifest = JSON.parse((await load(entry.digest)).toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  await load(manifest.config.digest);
  for (const layer of manifest.layers) await load(layer.digest);
  return { manifestDigest: entry.digest, blobs };
}
