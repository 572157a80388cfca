import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage, pushImage, readOciLayout, writeOciLayout } from '@berth/oci';
import { sha256Digest } from '@berth/spec';
import { busyboxRootfs, startRegistry, type RegistryHandle } from './index.js';

let registry: RegistryHandle;
before(async () => {
  registry = await startRegistry();
});
after(async () => {
  await registry.stop();
});

test('a busybox image builds, round-trips through an OCI layout and pushes to a local registry', async () => {
  const image = await buildImage({ layers: [busyboxRootfs()], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] } });
  assert.equal(image.config.rootfs.diff_ids.length, 1);

  const layoutDir = mkdtempSync(join(tmpdir(), 'berth-layout-'));
  await writeOciLayout(layoutDir, image, 'busybox:test');
  const back = await readOciLayout(layoutDir, 'busybox:test');
  assert.equal(back.manifestDigest, image.manifestDigest);

  // The layer holds a busybox that runs with the libc it carries.
  const rootfs = mkdtempSync(join(tmpdir(), 'berth-rootfs-'));
  const layer = image.blobs.get(image.manifest.layers[0]!.digest)!;
  execFileSync('tar', ['-xz', '-C', rootfs], { input: layer });
  assert.equal(execFileSync('chroot', [rootfs, '/bin/echo', 'hello from the image'], { encoding: 'utf8' }), 'hello from the image\n');

  await pushImage(registry.url, 'test/busybox', 'v1', image);
  const res = await fetch(`${registry.url}/v2/test/busybox/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(sha256Digest(body), image.manifestDigest);
  const blob = await fetch(`${registry.url}/v2/test/busybox/blobs/${image.configDigest}`);
  assert.equal(sha256Digest(Buffer.from(await blob.arrayBuffer())), image.configDigest);
});
