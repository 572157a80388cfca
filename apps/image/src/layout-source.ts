import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '@berth/errors';
import type { ImageReference, RegistryResponse } from '@berth/registry';
import { parseDigest, refNameAnnotation, sha256Digest, type ImageIndex } from '@berth/spec';

/** Where a pull gets manifests and blobs: a registry, or an OCI image layout on disk. */
export interface ContentSource {
  manifest(ref: ImageReference, reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string }>;
  blob(ref: ImageReference, digest: string, offset?: number, signal?: AbortSignal): Promise<RegistryResponse>;
}

/**
 * An OCI image layout (oci-layout, index.json, blobs/) as a content source,
 * so an image can be imported with no registry at all (Berth's built-in
 * sandbox image, air-gapped nodes). A tag is looked up by the index's
 * `org.opencontainers.image.ref.name` annotation, as the full name or the tag.
 */
export class OciLayoutSource implements ContentSource {
  constructor(private readonly dir: string) {}

  private blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  async manifest(ref: ImageReference, reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string }> {
    let digest = reference;
    let mediaType = '';
    if (!reference.startsWith('sha256:')) {
      const index = JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as ImageIndex;
      const full = `${ref.domain}/${ref.path}:${reference}`;
      const entry = index.manifests.find((m) => m.annotations?.[refNameAnnotation] === full || m.annotations?.[refNameAnnotation] === reference);
      if (entry === undefined) throw new NotFoundError(`${full} is not in the image layout ${this.dir}`);
      digest = entry.digest;
      mediaType = entry.mediaType;
    }
    const bytes = await readFile(this.blobPath(digest)).catch(() => {
      throw new NotFoundError(`${digest} is not in the image layout ${this.dir}`);
    });
    return { bytes, digest: sha256Digest(bytes), mediaType };
  }

  async blob(_ref: ImageReference, digest: string, offset = 0): Promise<RegistryResponse> {
    const path = this.blobPath(digest);
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size === undefined) throw new NotFoundError(`${digest} is not in the image layout ${this.dir}`);
    const body = createReadStream(path, { start: offset, highWaterMark: 1024 * 1024 });
    body.on('error', () => undefined); // seen by the reader, as for a registry's body
    const headers: Record<string, string> = { 'content-length': String(size - offset) };
    return { status: offset > 0 ? 206 : 200, header: (name) => headers[name.toLowerCase()], body, discard: async () => void body.destroy() };
  }
}
