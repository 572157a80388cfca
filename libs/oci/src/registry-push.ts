import { UnavailableError } from '@berth/errors';
import type { BuiltImage } from './build.js';

export interface PushOptions {
  /** An Authorization header value for a registry that wants one. */
  authorization?: string;
}

const headersOf = (options: PushOptions): Record<string, string> => (options.authorization === undefined ? {} : { authorization: options.authorization });

/** Uploads blobs the registry does not have yet (monolithic uploads). */
export async function pushBlobs(registry: string, repository: string, blobs: Iterable<[string, Buffer]>, options: PushOptions = {}): Promise<void> {
  const auth = headersOf(options);
  for (const [digest, bytes] of blobs) {
    const head = await fetch(`${registry}/v2/${repository}/blobs/${digest}`, { method: 'HEAD', headers: auth });
    if (head.ok) continue;
    const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth });
    if (start.status !== 202) throw new UnavailableError(`push ${repository}: upload start answered ${start.status}`);
    const location = new URL(start.headers.get('location') ?? '', registry);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body: bytes, headers: { ...auth, 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new UnavailableError(`push ${repository} blob ${digest}: ${put.status} ${await put.text()}`);
  }
}

/** Puts a manifest or index under a tag or digest. */
export async function pushManifest(registry: string, repository: string, reference: string, bytes: Buffer, mediaType: string, options: PushOptions = {}): Promise<void> {
  const res = await fetch(`${registry}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { ...headersOf(options), 'content-type': mediaType } });
  if (res.status !== 201) throw new UnavailableError(`push ${repository}:${reference} manifest: ${res.status} ${await res.text()}`);
}

/**
 * Pushes an image to a registry over the OCI distribution API (its blobs,
 * then the manifest under `tag`). `registry` is a base URL such as
 * http://127.0.0.1:5000.
 */
export async function pushImage(registry: string, repository: string, tag: string, image: BuiltImage, options: PushOptions = {}): Promise<void> {
  await pushBlobs(registry, repository, [...image.blobs].filter(([d]) => d !== image.manifestDigest), options);
  await pushManifest(registry, repository, tag, image.manifestBytes, image.manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json', options);
}
