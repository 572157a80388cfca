import { strict as assert } from 'node:assert';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import { isCategory } from '@berth/errors';
import { lgetxattr } from '@berth/native';
import { tarLayer, type LayerEntry } from '@berth/oci';
import { sha256Digest } from '@berth/spec';
import { chainIds, selectPlatform } from './puller.js';
import { applyLayer } from './unpack.js';

const base = mkdtempSync('/var/tmp/berth-unpack-');
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

async function apply(entries: LayerEntry[] | Buffer, options: { gzip?: boolean; max?: number } = {}) {
  const root = join(base, String(n++));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(root);
  const tar = Buffer.isBuffer(entries) ? entries : await tarLayer(entries);
  const blob = options.gzip ? gzipSync(tar) : tar;
  const result = await applyLayer(Readable.from([blob]), root, { compression: options.gzip ? 'gzip' : 'none', maxUncompressedBytes: options.max ?? 1 << 30 });
  return { root, result, tar };
}

const refused = (pattern: RegExp) => (e: Error) => isCategory(e, 'failed-precondition') && pattern.test(e.message);

test('a gzip layer unpacks, and its diff ID is the digest of the uncompressed tar', async () => {
  const { root, result, tar } = await apply([{ type: 'dir', path: '/a' }, { type: 'file', path: '/a/f', content: 'hi', mode: 0o640 }], { gzip: true });
  assert.equal(result.diffId, sha256Digest(tar));
  assert.equal(readFileSync(join(root, 'a/f'), 'utf8'), 'hi');
  assert.equal(lstatSync(join(root, 'a/f')).mode & 0o777, 0o640);
});

test('a zstd layer unpacks to the same diff ID as the uncompressed tar', async () => {
  const root = join(base, String(n++));
  const { mkdirSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  mkdirSync(root);
  const tar = await tarLayer([{ type: 'file', path: '/z', content: 'zstd!'.repeat(1000) }]);
  const blob = execFileSync('zstd', ['-q', '-c'], { input: tar });
  const result = await applyLayer(Readable.from([blob]), root, { compression: 'zstd', maxUncompressedBytes: 1 << 30 });
  assert.equal(result.diffId, sha256Digest(tar));
  assert.equal(readFileSync(join(root, 'z'), 'utf8'), 'zstd!'.repeat(1000));
  await assert.rejects(applyLayer(Readable.from([Buffer.from('not zstd at all')]), join(base, 'x'), { compression: 'zstd', maxUncompressedBytes: 1 << 30 }), (e: Error) => isCategory(e, 'failed-precondition'));
});

test('whiteouts become overlay whiteouts and opaque markers the opaque xattr', async () => {
  const { root } = await apply([{ type: 'dir', path: '/d' }, { type: 'file', path: '/d/.wh.gone' }, { type: 'file', path: '/d/.wh..wh..opq' }]);
  const st = lstatSync(join(root, 'd/gone'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, 0);
  assert.equal(lgetxattr(join(root, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.equal(existsSync(join(root, 'd/.wh..wh..opq')), false);
});

test('entries that climb out of the root are refused', async () => {
  await assert.rejects(apply([{ type: 'file', path: '../../outside', content: 'x' }]), refused(/escapes the root/));
  await assert.rejects(apply([{ type: 'file', path: '/a/../../outside', content: 'x' }]), refused(/escapes the root/));
  await assert.rejects(apply([{ type: 'link', path: '/l', target: '../../etc/passwd' }]), refused(/escapes the root/));
  assert.equal(existsSync(join(base, '..', 'outside')), false);
});

test('absolute paths stay inside the root', async () => {
  const { root } = await apply([{ type: 'file', path: '/etc/abs', content: 'x' }]);
  assert.equal(readFileSync(join(root, 'etc/abs'), 'utf8'), 'x');
});

test('nothing is written through a symlink, even one the layer made itself', async () => {
  const target = mkdtempSync('/var/tmp/berth-target-');
  await assert.rejects(apply([{ type: 'symlink', path: '/evil', target }, { type: 'file', path: '/evil/planted', content: 'x' }]), refused(/through the symlink/));
  assert.equal(existsSync(join(target, 'planted')), false);
  await assert.rejects(apply([{ type: 'symlink', path: '/evil', target }, { type: 'link', path: '/h', target: '/evil/x' }]), refused(/through the symlink/));
  // A directory already written into, then replaced by a symlink: what was known of it is forgotten.
  const swapped = [
    { type: 'dir' as const, path: '/d' },
    { type: 'file' as const, path: '/d/first', content: 'x' },
    { type: 'symlink' as const, path: '/d', target },
    { type: 'file' as const, path: '/d/planted', content: 'x' },
  ];
  await assert.rejects(apply(swapped), refused(/through the symlink/));
  assert.equal(existsSync(join(target, 'planted')), false);
  rmSync(target, { recursive: true });
});

test('a hard link to something outside the layer is refused', async () => {
  await assert.rejects(apply([{ type: 'link', path: '/h', target: '/not/here' }]), refused(/points outside this layer/));
});

test('a layer that decompresses past the limit is refused', async () => {
  const bomb = await tarLayer([{ type: 'file', path: '/zeros', content: Buffer.alloc(4 * 1024 * 1024) }]);
  await assert.rejects(apply(bomb, { gzip: true, max: 1024 * 1024 }), refused(/decompresses to more than/));
});

test('chain IDs and platform selection follow the image spec', () => {
  const a = sha256Digest('a');
  const b = sha256Digest('b');
  const [c0, c1] = chainIds([a, b]);
  assert.equal(c0, a);
  assert.equal(c1, sha256Digest(`${a} ${b}`));
  const index = {
    schemaVersion: 2 as const,
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest('arm'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest('amd'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' }).digest, sha256Digest('amd'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest, sha256Digest('arm'));
  assert.throws(() => selectPlatform(index, { os: 'linux', architecture: 's390x' }), (e: Error) => isCategory(e, 'not-found'));
});
