import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { sha256Digest } from '@berth/spec';
import { buildImage, tarLayer } from './index.js';

test('a layer tar holds files, directories, symlinks and hard links as tar lists them', async () => {
  const tar = await tarLayer([
    { type: 'dir', path: '/bin' },
    { type: 'file', path: '/bin/tool', content: 'x', mode: 0o4755, uid: 1000, gid: 1000 },
    { type: 'link', path: '/bin/alias', target: '/bin/tool' },
    { type: 'symlink', path: '/bin/sym', target: 'tool' },
  ]);
  const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar, encoding: 'utf8' });
  assert.match(listing, /^drwxr-xr-x 0\/0 .* bin\/$/m);
  assert.match(listing, /^-rwsr-xr-x 1000\/1000 +1 .* bin\/tool$/m);
  // A hard link's header carries its target's mode and owner, as tar writes it.
  assert.match(listing, /^hrwsr-xr-x 1000\/1000 .* bin\/alias link to bin\/tool$/m);
  assert.match(listing, /^lrwxrwxrwx 0\/0 .* bin\/sym -> tool$/m);
});

test('an image config records the uncompressed digest of each layer; the manifest the compressed one', async () => {
  const image = await buildImage({ layers: [[{ type: 'file', path: '/a', content: 'a' }], [{ type: 'file', path: '/b', content: 'b' }]], config: { Cmd: ['/a'] } });
  assert.equal(image.manifest.layers.length, 2);
  image.manifest.layers.forEach((layer, i) => {
    const blob = image.blobs.get(layer.digest)!;
    assert.equal(sha256Digest(blob), layer.digest);
    assert.equal(blob.length, layer.size);
    assert.equal(sha256Digest(gunzipSync(blob)), image.config.rootfs.diff_ids[i]);
  });
  assert.equal(sha256Digest(image.manifestBytes), image.manifestDigest);
  assert.equal(image.manifest.config.digest, image.configDigest);
});
