import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import { isCategory } from '@berth/errors';
import { lgetxattr, lsetxattr, mknod, S_IFCHR, S_IFIFO } from '@berth/native';
import { tarLayer, type LayerEntry } from '@berth/oci';
import { sha256Digest } from '@berth/spec';
import { chainIds, selectPlatform } from './puller.js';
import { applyLayer, StreamedUnpack } from './unpack.js';

const base = mkdtempSync('/var/tmp/berth-unpack-');
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

async function apply(entries: LayerEntry[] | Buffer, options: { gzip?: boolean; max?: number } = {}) {
  const root = join(base, String(n++));
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
  mkdirSync(root);
  const tar = await tarLayer([{ type: 'file', path: '/z', content: 'zstd!'.repeat(1000) }]);
  const blob = execFileSync('zstd', ['-q', '-c'], { input: tar });
  const result = await applyLayer(Readable.from([blob]), root, { compression: 'zstd', maxUncompressedBytes: 1 << 30 });
  assert.equal(result.diffId, sha256Digest(tar));
  assert.equal(readFileSync(join(root, 'z'), 'utf8'), 'zstd!'.repeat(1000));
  const other = join(base, String(n++));
  mkdirSync(other);
  await assert.rejects(applyLayer(Readable.from([Buffer.from('not zstd at all')]), other, { compression: 'zstd', maxUncompressedBytes: 1 << 30 }), refused(/zstd layer does not decompress/));
  await assert.rejects(applyLayer(Readable.from([blob.subarray(0, blob.length - 5)]), other, { compression: 'zstd', maxUncompressedBytes: 1 << 30 }), refused(/zstd layer is truncated/));
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

test('whiteouts and opaque markers under a symlink are refused; a symlink replaced by a directory or a file is replaced, not followed', async () => {
  const target = mkdtempSync('/var/tmp/berth-target-');
  try {
    await assert.rejects(apply([{ type: 'symlink', path: '/w', target }, { type: 'file', path: '/w/.wh.x' }]), refused(/through the symlink \/w/));
    await assert.rejects(apply([{ type: 'symlink', path: '/o', target }, { type: 'file', path: '/o/.wh..wh..opq' }]), refused(/through the symlink \/o/));
    const { root } = await apply([
      { type: 'symlink', path: '/d', target },
      { type: 'dir', path: '/d' },
      { type: 'file', path: '/d/inside', content: 'in' },
      { type: 'symlink', path: '/f', target: join(target, 'planted') },
      { type: 'file', path: '/f', content: 'file' },
      { type: 'file', path: '/.wh..wh.plnk', content: '' },
    ]);
    assert.ok(lstatSync(join(root, 'd')).isDirectory());
    assert.equal(readFileSync(join(root, 'd/inside'), 'utf8'), 'in');
    assert.ok(lstatSync(join(root, 'f')).isFile());
    assert.equal(existsSync(join(root, '.wh.plnk')), false, 'aufs metadata creates nothing');
    assert.deepEqual(readdirSync(target), [], 'nothing was written outside the root');
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
});

test('a hard link to something outside the layer is refused', async () => {
  await assert.rejects(apply([{ type: 'link', path: '/h', target: '/not/here' }]), refused(/points outside this layer/));
});

test('a layer that decompresses past the limit is refused', async () => {
  const bomb = await tarLayer([{ type: 'file', path: '/zeros', content: Buffer.alloc(4 * 1024 * 1024) }]);
  await assert.rejects(apply(bomb, { gzip: true, max: 1024 * 1024 }), refused(/decompresses to more than/));
});

test('a tree tarred by GNU tar comes back the same: owners, setuid, times, devices, fifos, xattrs, long UTF-8 names', async () => {
  const src = mkdtempSync('/var/tmp/berth-src-');
  try {
    const long = `${'ü'.repeat(60)}/${'名'.repeat(40)}.txt`;
    mkdirSync(join(src, 'ü'.repeat(60)));
    writeFileSync(join(src, long), 'long');
    writeFileSync(join(src, 'suid'), '#!/bin/sh\n');
    chownSync(join(src, 'suid'), 1234, 5678);
    chmodSync(join(src, 'suid'), 0o4755);
    linkSync(join(src, 'suid'), join(src, 'suid-link'));
    symlinkSync('suid', join(src, 'sym'));
    mkdirSync(join(src, 'dir'), { mode: 0o750 });
    writeFileSync(join(src, 'dir/file'), 'x');
    lsetxattr(join(src, 'dir/file'), 'user.berth', Buffer.from('yes'));
    lsetxattr(join(src, 'dir'), 'trusted.overlay.redirect', Buffer.from('/elsewhere'));
    mknod(join(src, 'null'), S_IFCHR | 0o666, 1, 3);
    mknod(join(src, 'fifo'), S_IFIFO | 0o600, 0, 0);
    const when = new Date('2021-02-03T04:05:06Z');
    for (const p of ['suid', 'dir/file', 'dir', long]) utimesSync(join(src, p), when, when);
    lutimesSync(join(src, 'sym'), when, when);
    const tar = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '-C', src, '-cf', '-', '.']);
    const { root, result } = await apply(tar, { gzip: true });
    assert.equal(result.diffId, sha256Digest(tar));
    assert.equal(result.uncompressedBytes, tar.length);
    assert.equal(readFileSync(join(root, long), 'utf8'), 'long');
    const suid = lstatSync(join(root, 'suid'));
    assert.equal(suid.mode & 0o7777, 0o4755);
    assert.deepEqual([suid.uid, suid.gid, suid.mtime.getTime(), suid.nlink], [1234, 5678, when.getTime(), 2]);
    assert.equal(lstatSync(join(root, 'suid-link')).ino, suid.ino);
    assert.equal(readlinkSync(join(root, 'sym')), 'suid');
    assert.equal(lstatSync(join(root, 'sym')).mtime.getTime(), when.getTime());
    const dir = lstatSync(join(root, 'dir'));
    assert.equal(dir.mode & 0o7777, 0o750);
    assert.equal(dir.mtime.getTime(), when.getTime(), 'a directory keeps its time after files are written into it');
    assert.equal(lgetxattr(join(root, 'dir/file'), 'user.berth')?.toString(), 'yes');
    assert.equal(lgetxattr(join(root, 'dir'), 'trusted.overlay.redirect'), undefined, 'a layer cannot steer overlayfs');
    const dev = lstatSync(join(root, 'null'));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, lstatSync(join(src, 'null')).rdev);
    assert.ok(lstatSync(join(root, 'fifo')).isFIFO());
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});

test('names come out byte for byte: decomposed and invalid UTF-8 are not rewritten', async () => {
  const src = mkdtempSync('/var/tmp/berth-src-');
  try {
    const names = [Buffer.from('e\u0301te\u0301'), Buffer.from('caf\u00e9'), Buffer.concat([Buffer.from('x'.repeat(120)), Buffer.from('e\u0301')]), Buffer.from([0x62, 0xff, 0x62])];
    for (const name of names) writeFileSync(Buffer.concat([Buffer.from(`${src}/`), name]), 'x');
    const tar = execFileSync('tar', ['--format=pax', '-C', src, '-cf', '-', '.']);
    const { root } = await apply(tar);
    const listing = (dir: string) => readdirSync(dir, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
    assert.deepEqual(listing(root), listing(src));
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});

test('unpacks side by side leave the process umask as it was', async () => {
  const umask = () => /^Umask:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const before = umask();
  const entries = Array.from({ length: 300 }, (_, i) => ({ type: 'file' as const, path: `/d${i % 7}/f${i}`, content: 'x' }));
  for (let round = 0; round < 3; round++) await Promise.all([0, 1, 2, 3].map(() => apply(entries)));
  assert.equal(umask(), before);
});

test('chunk boundaries do not matter: gzip in 7-byte pieces, several members, output past the buffer', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 'a');
  const tar = await tarLayer([{ type: 'file', path: '/big', content: big }, { type: 'file', path: '/small', content: 'tail' }]);
  const half = 1536;
  const blob = Buffer.concat([gzipSync(tar.subarray(0, half)), gzipSync(tar.subarray(half))]);
  const pieces = function* () {
    for (let i = 0; i < blob.length; i += 7) yield blob.subarray(i, i + 7);
  };
  const root = join(base, String(n++));
  mkdirSync(root);
  const result = await applyLayer(pieces(), root, { compression: 'gzip', maxUncompressedBytes: 1 << 30 });
  assert.equal(result.diffId, sha256Digest(tar));
  assert.ok(readFileSync(join(root, 'big')).equals(big));
  assert.equal(readFileSync(join(root, 'small'), 'utf8'), 'tail');
});

test('corrupt, truncated and non-tar layers are refused', async () => {
  const tar = await tarLayer([{ type: 'file', path: '/f', content: 'x'.repeat(5000) }]);
  const gz = gzipSync(tar);
  await assert.rejects(apply(gz.subarray(0, gz.length - 10), { gzip: false }).then(() => undefined), refused(/tar|truncated/i));
  const root = join(base, String(n++));
  mkdirSync(root);
  await assert.rejects(applyLayer(Readable.from([gz.subarray(0, gz.length - 10)]), root, { compression: 'gzip', maxUncompressedBytes: 1 << 30 }), refused(/gzip layer is truncated/));
  await assert.rejects(applyLayer(Readable.from([Buffer.concat([gz, Buffer.from('garbage')])]), root, { compression: 'gzip', maxUncompressedBytes: 1 << 30 }), refused(/gzip layer does not decompress/));
  await assert.rejects(applyLayer(Readable.from([Buffer.alloc(2048, 'z')]), root, { compression: 'none', maxUncompressedBytes: 1 << 30 }), refused(/not a valid tar/));
});

test('a full disk is RESOURCE_EXHAUSTED, named by its errno, not blamed on the layer', async () => {
  const root = join(base, String(n++));
  mkdirSync(root);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root]);
  try {
    const tar = await tarLayer([{ type: 'file', path: '/big', content: randomBytes(1024 * 1024) }]);
    await assert.rejects(applyLayer([tar], root, { compression: 'none', maxUncompressedBytes: 1 << 30 }), (e: Error) => {
      const cause = (e as Error & { cause?: { code?: string; layerFault?: boolean } }).cause;
      return isCategory(e, 'resource-exhausted') && cause?.code === 'ENOSPC' && cause.layerFault === false;
    });
  } finally {
    execFileSync('umount', [root]);
  }
});

test('a source that fails midway fails the apply with its own error, after the thread has stopped', async () => {
  const tar = await tarLayer([{ type: 'file', path: '/f', content: Buffer.alloc(2 * 1024 * 1024, 1) }]);
  const root = join(base, String(n++));
  mkdirSync(root);
  const broken = async function* () {
    yield tar.subarray(0, 4096);
    throw new Error('connection reset');
  };
  await assert.rejects(applyLayer(broken(), root, { compression: 'none', maxUncompressedBytes: 1 << 30 }), /connection reset/);
});

test('a streamed unpack applies a layer fed from its first byte, and drops what it wrote otherwise', async () => {
  const content = randomBytes(3 * 1024 * 1024);
  const tar = await tarLayer([{ type: 'file', path: '/f', content }]);
  const blob = gzipSync(tar);
  const made: string[] = [];
  const removed: string[] = [];
  const target = {
    prepare: async () => {
      const root = join(base, String(n++));
      mkdirSync(root);
      made.push(root);
      return { key: root, root };
    },
    remove: async (key: string) => {
      removed.push(key);
      rmSync(key, { recursive: true });
    },
  };
  const options = { compression: 'gzip' as const, maxUncompressedBytes: 1 << 30 };
  const feed = async (s: StreamedUnpack, bytes: Buffer) => {
    for (let i = 0; i < bytes.length; i += 100_000) await s.push([bytes.subarray(i, i + 50_000), bytes.subarray(i + 50_000, i + 100_000)]);
  };

  const whole = new StreamedUnpack(target, options);
  whole.begin(0);
  await feed(whole, blob);
  const done = await whole.finish(blob.length);
  assert.equal(done?.result.diffId, sha256Digest(tar));
  assert.ok(readFileSync(join(done!.key, 'f')).equals(content));

  const resumed = new StreamedUnpack(target, options);
  resumed.begin(0);
  await feed(resumed, blob.subarray(0, 200_000));
  resumed.begin(200_000); // a retry after a break: the rest comes from the store
  assert.equal(await resumed.finish(blob.length), undefined);
  assert.equal(removed.at(-1), made.at(-1), 'what the spoiled unpack wrote is removed');

  const short = new StreamedUnpack(target, options);
  short.begin(0);
  await feed(short, blob.subarray(0, 200_000));
  assert.equal(await short.finish(blob.length), undefined);
  assert.equal(removed.at(-1), made.at(-1));

  const hostile = new StreamedUnpack(target, options);
  const evil = gzipSync(await tarLayer([{ type: 'file', path: '../../outside', content: 'x' }]));
  hostile.begin(0);
  await feed(hostile, evil);
  await assert.rejects(hostile.finish(evil.length), refused(/escapes the root/));
  assert.equal(removed.at(-1), made.at(-1));
  assert.equal(made.length, 4);
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
