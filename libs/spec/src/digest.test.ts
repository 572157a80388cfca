import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { isDigest, layerCompression, MediaType, parseDigest, sha256Digest } from './index.js';

test('a well-formed digest parses', () => {
  const d = sha256Digest('hello');
  assert.equal(d, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.deepEqual(parseDigest(d).algorithm, 'sha256');
});

test('digests that could reach outside a path are refused', () => {
  for (const bad of ['sha256:../../etc/passwd', `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `md5:${'a'.repeat(32)}`, 'nothing', `sha256:${'a'.repeat(64)}/x`, `:${'a'.repeat(64)}`, `constructor:${'a'.repeat(64)}`]) {
    assert.equal(isDigest(bad), false, bad);
    assert.throws(() => parseDigest(bad), (err: Error) => isCategory(err, 'invalid-argument'));
  }
  assert.equal(isDigest(`sha512:${'0'.repeat(128)}`), true);
});

test('layer media types tell their compression', () => {
  assert.equal(layerCompression(MediaType.dockerLayerGzip), 'gzip');
  assert.equal(layerCompression(MediaType.ociLayerZstd), 'zstd');
  assert.equal(layerCompression(MediaType.ociLayer), 'none');
  assert.equal(layerCompression(MediaType.ociConfig), undefined);
});
