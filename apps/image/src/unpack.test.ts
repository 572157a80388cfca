import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
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

// Where a layer's tar may end is pinned to Go's archive/tar (src/archive/tar/reader.go), which
// containerd, CRI-O and Docker unpack with: Next takes io.EOF where a header would begin, or
// anywhere in the padding after an entry's data (tryReadFull), as the end of the archive, so a tar
// may stop right after its last file's data, as umoci 0.4.7 writes every layer. EOF inside data or
// inside a header block is io.ErrUnexpectedEOF; a zero block followed by anything but a second one
// is ErrHeader or io.ErrUnexpectedEOF.

type Compression = 'none' | 'gzip' | 'zstd';
const compress = (tar: Buffer, compression: Compression) =>
  compression === 'gzip' ? gzipSync(tar) : compression === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: tar }) : tar;

async function applyBytes(tar: Buffer, compression: Compression = 'none', pieces = 0) {
  const root = join(base, String(n++));
  mkdirSync(root);
  const blob = compress(tar, compression);
  const chunks: Buffer[] = [];
  if (pieces > 0) for (let i = 0; i < blob.length; i += pieces) chunks.push(blob.subarray(i, i + pieces));
  else chunks.push(blob);
  const result = await applyLayer(chunks, root, { compression, maxUncompressedBytes: 1 << 30 });
  return { root, result };
}

/** Where `content` (unique in the tar) ends: the end of that file's data. */
const dataEnd = (tar: Buffer, content: Buffer) => {
  const at = tar.indexOf(content);
  assert.ok(at > 0 && tar.indexOf(content, at + 1) < 0, 'the marker is unique');
  return at + content.length;
};

/** A tree tarred by GNU tar in the given format, and by tar-stream (ustar), its last file last. */
async function treeTars() {
  const last = Buffer.from(`the last file ends here ${randomBytes(8).toString('hex')}\n`);
  const src = mkdtempSync('/var/tmp/berth-src-');
  try {
    mkdirSync(join(src, 'dir'));
    writeFileSync(join(src, 'dir/a'), 'a'.repeat(1000));
    writeFileSync(join(src, 'z'), last);
    const gnu = (format: string) => execFileSync('tar', [`--format=${format}`, '-C', src, '-cf', '-', 'dir', 'z']);
    const stream = await tarLayer([{ type: 'dir', path: '/dir' }, { type: 'file', path: '/dir/a', content: 'a'.repeat(1000) }, { type: 'file', path: '/z', content: last }]);
    return { last, tars: { gnu: gnu('gnu'), pax: gnu('pax'), ustar: stream } };
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}

test('a tar that stops right after its last file, or partway through the padding, unpacks as Go reads it; its diff ID is of the bytes given', async () => {
  const { last, tars } = await treeTars();
  const padding = 512 - (last.length % 512);
  for (const [format, tar] of Object.entries(tars)) {
    const end = dataEnd(tar, last);
    for (const extra of [0, 1, padding - 1]) {
      const cut = tar.subarray(0, end + extra);
      assert.notEqual(cut.length % 512, 0);
      for (const compression of ['none', 'gzip', 'zstd'] as const) {
        const what = `${format}, cut ${extra} bytes into the padding, ${compression}`;
        const { root, result } = await applyBytes(cut, compression).catch((e: Error) => assert.fail(`${what}: ${e.message}`));
        assert.equal(result.diffId, sha256Digest(cut), what);
        assert.equal(result.uncompressedBytes, cut.length, what);
        assert.ok(readFileSync(join(root, 'z')).equals(last), what);
        assert.equal(readFileSync(join(root, 'dir/a'), 'utf8'), 'a'.repeat(1000), what);
      }
    }
  }
  // Fed in odd pieces, the padding made up and the skips that end inside a piece.
  const cut = tars.pax.subarray(0, dataEnd(tars.pax, last));
  for (const compression of ['none', 'gzip'] as const) {
    const { root, result } = await applyBytes(cut, compression, 7);
    assert.equal(result.diffId, sha256Digest(cut));
    assert.ok(readFileSync(join(root, 'z')).equals(last));
  }
  const { result } = await applyBytes(tars.gnu, 'none', 13);
  assert.equal(result.diffId, sha256Digest(tars.gnu), 'a whole tar in odd pieces');
});

test('a tar cut inside a file, a header or its end-of-archive blocks is refused, as Go refuses it', async () => {
  const { last, tars } = await treeTars();
  const tar = tars.ustar;
  const end = dataEnd(tar, last);
  const header = end - last.length - 512; // the last file's header
  const eoa = end + 512 - (last.length % 512); // where the end-of-archive blocks begin
  assert.ok(tar.subarray(header + 500, header + 512).equals(Buffer.alloc(12)));
  const cuts: [string, Buffer, RegExp][] = [
    ['inside the last file', tar.subarray(0, end - 1), /^z: Truncated tar archive/],
    ['inside the first file', tar.subarray(0, dataEnd(tar, Buffer.from('a'.repeat(1000))) - 600), /^dir\/a: Truncated tar archive/],
    // What is missing of this header is zeros: made-up zeros would make a valid header of it.
    ['inside a header, after its last non-zero byte', tar.subarray(0, header + 500), /not a valid tar: Truncated tar archive/],
    ['inside a header', tar.subarray(0, header + 100), /not a valid tar: Truncated tar archive/],
    ['inside the first zero block', tar.subarray(0, eoa + 100), /not a valid tar: Truncated tar archive/],
    ['inside the second zero block', tar.subarray(0, eoa + 612), /zero block is followed by something other than a second one/],
    ['one zero block, then a header', Buffer.concat([tar.subarray(0, eoa + 512), tar.subarray(header, end)]), /zero block is followed by something other than a second one/],
  ];
  for (const [what, cut, message] of cuts) {
    for (const compression of ['none', 'gzip', 'zstd'] as const) {
      await assert.rejects(applyBytes(cut, compression), refused(message), `${what}, ${compression}`);
    }
  }
  const pax = tars.pax;
  const body = pax.lastIndexOf(Buffer.from(' mtime='));
  await assert.rejects(applyBytes(pax.subarray(0, body)), refused(/not a valid tar: the input ends early/), 'inside an extended header');
  const whiteout = await tarLayer([{ type: 'file', path: '/.wh.gone', content: 'x'.repeat(100) }]);
  await assert.rejects(applyBytes(whiteout.subarray(0, 512 + 50)), refused(/^\.wh\.gone: Truncated/), 'inside a whiteout (its data is dropped, but must be there)');

  // Go ends the archive after one zero block and EOF, or after two, whatever follows them.
  for (const ok of [tar.subarray(0, eoa + 512), Buffer.concat([tar.subarray(0, eoa + 1024), Buffer.from('trailing')])]) {
    const { root, result } = await applyBytes(ok);
    assert.equal(result.diffId, sha256Digest(ok));
    assert.ok(readFileSync(join(root, 'z')).equals(last));
  }
});

const umoci = (() => {
  try {
    execFileSync('umoci', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('a layer umoci wrote (no padding, no end-of-archive blocks) unpacks to the diff ID umoci recorded', { skip: !umoci && 'umoci is not installed' }, async () => {
  const work = mkdtempSync('/var/tmp/berth-umoci-');
  try {
    const src = join(work, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc/hello'), 'hello from umoci\n');
    const layout = join(work, 'oci');
    execFileSync('umoci', ['init', '--layout', layout]);
    execFileSync('umoci', ['new', '--image', `${layout}:t`]);
    execFileSync('umoci', ['insert', '--image', `${layout}:t`, src, '/']);
    const blob = (digest: string) => readFileSync(join(layout, 'blobs', ...digest.split(':')));
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(blob(index.manifests[0]!.digest).toString()) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
    const config = JSON.parse(blob(manifest.config.digest).toString()) as { rootfs: { diff_ids: string[] } };
    const layer = manifest.layers.at(-1)!;
    assert.match(layer.mediaType, /gzip/);
    const gz = blob(layer.digest);
    assert.notEqual(gunzipSync(gz).length % 512, 0, 'umoci ended the tar inside a block');
    const root = join(base, String(n++));
    mkdirSync(root);
    const result = await applyLayer([gz], root, { compression: 'gzip', maxUncompressedBytes: 1 << 30 });
    assert.equal(result.diffId, config.rootfs.diff_ids.at(-1));
    assert.equal(readFileSync(join(root, 'etc/hello'), 'utf8'), 'hello from umoci\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
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
