import { UnavailableError } from '@berth/errors';
import type { BuiltImage } from './build.js';

/**
 * Pushes an image to a registry over the OCI distribution API (monolithic
 * blob uploads, then the manifest under `tag`). `registry` is a base URL such
 * as http://127.0.0.1:5000.
 */
export async function pushImage(registry: string, repository: string, tag: string, image: BuiltImage, options: { authorization?: string } = {}): Promise<void> {
  const auth: Record<string, string> = options.authorization === undefined ? {} : { authorization: options.authorization };
  for (const [digest, bytes] of image.blobs) {
    if (digest === image.manifestDigest) continue;
    const head = await fetch(`${registry}/v2/${repository}/blobs/${digest}`, { method: 'HEAD', headers: auth });
    if (head.ok) continue;
    const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth });
    if (start.status !== 202) throw new UnavailableError(`push ${repository}: upload start answered ${start.status}`);
    const location = new URL(start.headers.get('location') ?? '', registry);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body: bytes, headers: { ...auth, 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new UnavailableError(`push ${repository} blob ${digest}: ${put.status} ${await put.text()}`);
  }
  const res = await fetch(`${registry}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    body: image.manifestBytes,
    headers: { ...auth, 'content-type': image.manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new UnavailableError(`push ${repository}:${tag} manifest: ${res.status} ${await res.text()}`);
}
