// One behavioural test suite for every implementation of the Store interface
// (the local store and the remote client): call `storeTestSuite` from a test
// file with a factory. Tests run in order on one store per suite. Needs root
// (overlay mounts) and @berth/native for overlay whiteouts.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isCategory, type ErrorCategory } from '@berth/errors';
import { makeOverlayWhiteout, setOverlayOpaque } from '@berth/native';
import { sha256Digest } from '@berth/spec';
import { gcRefContentPrefix, gcRefSnapshot, maxPutBytes, writableDir as mountWritableDir, type ContentInfo, type Mount, type Store } from './types.js';

export interface StoreUnderTest {
  store: Store;
  /** Stops the store; the suite's files may then be removed. */
  cleanup(): Promise<void>;
}

const category = (c: ErrorCategory) => (err: unknown) => isCategory(err, c);

async function ingest(store: Store, data: string | Buffer, ref = `ref-${Math.random()}`, extra: { labels?: Record<string, string>; leaseId?: string } = {}): Promise<ContentInfo> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const w = await store.content.writer({ ref, expectedDigest: sha256Digest(bytes), expectedSize: bytes.length, ...extra });
  await w.write(bytes);
  return w.commit();
}

async function readAll(store: Store, digest: string, range?: { offset?: number; length?: number }): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of store.content.read(digest, range)) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}

/** The directory an active snapshot writes to, from its mounts (see types.ts's writableDir). */
export function writableDir(mounts: Mount[]): string {
  const dir = mountWritableDir(mounts[0]!);
  assert.ok(dir, 'a writable mount: a bind mount or an overlay with an upper dir');
  return dir;
}

function withMount<T>(mounts: Mount[], fn: (dir: string) => T): T {
  const target = mkdtempSync('/var/tmp/berth-mnt-');
  const m = mounts[0]!;
  const args = m.type === 'bind' ? ['--bind', m.source, target] : ['-t', m.type, m.source, '-o', m.options.join(','), target];
  execFileSync('mount', args);
  try {
    return fn(target);
  } finally {
    execFileSync('umount', [target]);
    rmSync(target, { recursive: true });
  }
}

export function storeTestSuite(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`store: ${name}`, () => {
    let s: StoreUnderTest;
    let store: Store;
    before(async () => {
      s = await open();
      store = s.store;
    });
    after(async () => {
      await s?.cleanup();
    });

    test('a committed blob can be read whole and by range, relabelled, listed and deleted', async () => {
      const info = await ingest(store, 'hello, berth', 'r-basic', { labels: { a: '1' } });
      assert.equal(info.size, 12);
      assert.deepEqual(info.labels, { a: '1' });
      assert.equal(await readAll(store, info.digest), 'hello, berth');
      assert.equal(await readAll(store, info.digest, { offset: 7, length: 3 }), 'ber');
      assert.equal(await readAll(store, info.digest, { offset: 7 }), 'berth');
      assert.ok((await store.content.list()).some((c) => c.digest === info.digest));
      assert.deepEqual((await store.content.updateLabels(info.digest, { b: '2' })).labels, { b: '2' });
      assert.deepEqual((await store.content.info(info.digest)).labels, { b: '2' });
      await store.content.delete(info.digest);
      await assert.rejects(store.content.info(info.digest), category('not-found'));
      await assert.rejects(store.content.delete(info.digest), category('not-found'));
    });

    test('a wrong digest or size is refused at commit and nothing is left', async () => {
      const good = Buffer.from('the real content');
      const w = await store.content.writer({ ref: 'r-wrong', expectedDigest: sha256Digest(good) });
      await w.write(Buffer.from('something else!!'));
      await assert.rejects(w.commit(), (e: Error) => isCategory(e, 'failed-precondition') && /digest mismatch/.test(e.message));
      await assert.rejects(store.content.info(sha256Digest(good)), category('not-found'));
      await assert.rejects(store.content.ingestStatus('r-wrong'), category('not-found'));

      const short = await store.content.writer({ ref: 'r-short', expectedDigest: sha256Digest(good), expectedSize: good.length + 5 });
      await short.write(good);
      await assert.rejects(short.commit(), (e: Error) => isCategory(e, 'failed-precondition') && /size mismatch/.test(e.message));
      const long = await store.content.writer({ ref: 'r-long', expectedDigest: sha256Digest(good), expectedSize: 3 });
      // Over the wire a write is not acknowledged on its own: the refusal comes by the commit at the latest.
      await assert.rejects(async () => {
        await long.write(good);
        await long.commit();
      }, category('failed-precondition'));
      await assert.rejects(store.content.info(sha256Digest(good)), category('not-found'));
    });

    test('pieces written as one land in order, after a single write', async () => {
      const pieces = [Buffer.from('alpha-'), Buffer.from(''), Buffer.from('beta-'), Buffer.alloc(70_000, 'g')];
      const tail = Buffer.from('-omega');
      const data = Buffer.concat([...pieces, tail]);
      const w = await store.content.writer({ ref: 'r-pieces', expectedDigest: sha256Digest(data), expectedSize: data.length });
      await w.write(pieces);
      assert.equal(w.offset(), data.length - tail.length);
      await w.write(tail);
      assert.equal((await w.commit()).digest, sha256Digest(data));
      assert.equal(await readAll(store, sha256Digest(data)), data.toString());
    });

    test('an ingest resumes from where it stopped', async () => {
      const data = Buffer.from('0123456789'.repeat(1000));
      const digest = sha256Digest(data);
      const first = await store.content.writer({ ref: 'r-resume', expectedDigest: digest, expectedSize: data.length });
      assert.equal(first.offset(), 0);
      await first.write(data.subarray(0, 4321));
      await first.close();
      const status = await store.content.ingestStatus('r-resume');
      assert.equal(status.offset, 4321);
      assert.equal(status.total, data.length);
      assert.equal(status.expectedDigest, digest);
      assert.ok((await store.content.listIngests()).some((i) => i.ref === 'r-resume'));
      const second = await store.content.writer({ ref: 'r-resume', expectedDigest: digest, expectedSize: data.length });
      assert.equal(second.offset(), 4321);
      await second.write(data.subarray(4321));
      const info = await second.commit();
      assert.equal(info.digest, digest);
      assert.equal(await readAll(store, digest), data.toString());
      await assert.rejects(store.content.ingestStatus('r-resume'), category('not-found'));
    });

    test('one writer per ref: the second is told it is in progress', async () => {
      const data = Buffer.from('contended');
      const digest = sha256Digest(data);
      const a = await store.content.writer({ ref: 'r-busy', expectedDigest: digest });
      await assert.rejects(store.content.writer({ ref: 'r-busy', expectedDigest: digest }), (e: Error) => isCategory(e, 'unavailable') && /in progress/.test(e.message));
      await assert.rejects(store.content.abortIngest('r-busy'), category('unavailable'));
      await a.close();
      const b = await store.content.writer({ ref: 'r-busy', expectedDigest: digest });
      await b.write(data);
      await b.commit();
      await assert.rejects(store.content.writer({ ref: 'r-again', expectedDigest: digest }), category('already-exists'));
    });

    test('a file on the store host is imported, verified, and refused when it is not what was promised', async () => {
      const dir = mkdtempSync('/var/tmp/berth-import-');
      try {
        const data = Buffer.from('imported by path\n'.repeat(5000));
        const file = join(dir, 'blob');
        writeFileSync(file, data, { mode: 0o600 });
        const info = await store.content.importFile(file, { ref: 'r-import', expectedDigest: sha256Digest(data), expectedSize: data.length, labels: { from: 'file' } });
        assert.equal(info.digest, sha256Digest(data));
        assert.equal(info.size, data.length);
        assert.deepEqual(info.labels, { from: 'file' });
        assert.equal(await readAll(store, info.digest), data.toString());
        await store.content.delete(info.digest);

        const other = sha256Digest('something else');
        await assert.rejects(store.content.importFile(file, { ref: 'r-import-bad', expectedDigest: other }), (e: Error) => isCategory(e, 'failed-precondition') && /digest mismatch/.test(e.message));
        await assert.rejects(store.content.importFile(file, { ref: 'r-import-size', expectedDigest: sha256Digest(data), expectedSize: 3 }), (e: Error) => isCategory(e, 'failed-precondition') && /size mismatch/.test(e.message));
        await assert.rejects(store.content.info(other), category('not-found'));
        await assert.rejects(store.content.info(sha256Digest(data)), category('not-found'));
        assert.deepEqual((await store.content.listIngests()).filter((i) => i.ref.startsWith('r-import')), [], 'refused imports leave no ingest');

        await assert.rejects(store.content.importFile('relative/path', { ref: 'r-import-rel', expectedDigest: other }), category('invalid-argument'));
        await assert.rejects(store.content.importFile(join(dir, 'missing'), { ref: 'r-import-missing', expectedDigest: other }), category('not-found'));
        await assert.rejects(store.content.importFile(dir, { ref: 'r-import-dir', expectedDigest: other }), (e: Error) => isCategory(e, 'invalid-argument') && /not a regular file/.test(e.message));
        execFileSync('mkfifo', [join(dir, 'fifo')]);
        await assert.rejects(store.content.importFile(join(dir, 'fifo'), { ref: 'r-import-fifo', expectedDigest: other }), (e: Error) => isCategory(e, 'invalid-argument') && /not a regular file/.test(e.message));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('a small blob is put whole in one call; one already there joins the lease and gets the labels; lies and oversize are refused', async () => {
      const data = Buffer.from('{"config":"small"}');
      const digest = sha256Digest(data);
      const first = await store.content.put(data, { ref: 'r-put', expectedDigest: digest, labels: { a: '1' } });
      assert.deepEqual([first.digest, first.size, first.labels], [digest, data.length, { a: '1' }]);
      assert.equal(await readAll(store, digest), data.toString());
      const lease = await store.createLease({ id: 'put-lease' });
      const again = await store.content.put(data, { ref: 'r-put-again', expectedDigest: digest, labels: { b: '2' }, leaseId: lease.id });
      assert.deepEqual(again.labels, { a: '1', b: '2' }, 'labels merged, none lost');
      assert.ok((await store.listLeases()).find((l) => l.id === lease.id)?.resources.some((r) => r.kind === 'blob' && r.ref === digest), 'the blob joined the lease');
      const both = await Promise.all([1, 2, 3].map(() => store.content.put(Buffer.from('raced'), { ref: 'r-put-race', expectedDigest: sha256Digest('raced') })));
      assert.ok(both.every((i) => i.digest === sha256Digest('raced')), 'concurrent puts of one blob all succeed');

      await assert.rejects(store.content.put(data, { ref: 'r-put-bad', expectedDigest: sha256Digest('other') }), (e: Error) => isCategory(e, 'failed-precondition') && /digest mismatch/.test(e.message));
      await assert.rejects(store.content.info(sha256Digest('other')), category('not-found'));
      await assert.rejects(store.content.put(data, { ref: 'r-put-size', expectedDigest: digest, expectedSize: 3 }), (e: Error) => isCategory(e, 'failed-precondition') && /size mismatch/.test(e.message));
      await assert.rejects(store.content.put(Buffer.alloc(maxPutBytes + 1), { ref: 'r-put-big', expectedDigest: sha256Digest(Buffer.alloc(maxPutBytes + 1)) }), category('invalid-argument'));
      assert.deepEqual((await store.content.listIngests()).filter((i) => i.ref.startsWith('r-put')), [], 'no ingest is left behind');
      await store.deleteLease(lease.id);
      await store.content.delete(digest);
      await store.content.delete(sha256Digest('raced'));
    });

    test('an aborted ingest is gone', async () => {
      const w = await store.content.writer({ ref: 'r-abort', expectedDigest: sha256Digest('x') });
      await w.write(Buffer.from('x'));
      await w.abort();
      await assert.rejects(store.content.ingestStatus('r-abort'), category('not-found'));
    });

    test('digests, refs and keys that could reach outside the store are refused', async () => {
      await assert.rejects(store.content.info('sha256:../../../etc/passwd'), category('invalid-argument'));
      await assert.rejects(store.content.writer({ ref: 'ok', expectedDigest: 'sha256:../x' }), category('invalid-argument'));
      await assert.rejects(store.content.writer({ ref: 'has space', expectedDigest: sha256Digest('a') }), category('invalid-argument'));
      await assert.rejects(store.content.writer({ ref: 'x'.repeat(300), expectedDigest: sha256Digest('a') }), category('invalid-argument'));
      await assert.rejects(store.snapshots.prepare('bad\u0000key'), category('invalid-argument'));
      await assert.rejects(store.snapshots.stat('nope'), category('not-found'));
    });

    test('a layer unpacked without a parent is committed on one (parallel unpack)', async () => {
      const lower = writableDir(await store.snapshots.prepare('par-lower'));
      const upper = writableDir(await store.snapshots.prepare('par-upper'));
      writeFileSync(join(upper, 'from-upper'), 'u');
      writeFileSync(join(lower, 'from-lower'), 'l');
      const base = await store.snapshots.commit('sha256:' + '5'.repeat(64), 'par-lower');
      const top = await store.snapshots.commit('sha256:' + '6'.repeat(64), 'par-upper', { parent: base.key });
      assert.equal(top.parent, base.key);
      withMount(await store.snapshots.view('par-view', top.key), (dir) => assert.deepEqual(readdirSync(dir).sort(), ['from-lower', 'from-upper']));
      await store.snapshots.prepare('par-stacked', top.key);
      await assert.rejects(store.snapshots.commit('sha256:' + '7'.repeat(64), 'par-stacked', { parent: base.key }), category('failed-precondition'), 'a prepared parent is not replaced');
      await store.snapshots.prepare('par-loose');
      await assert.rejects(store.snapshots.commit('sha256:' + '8'.repeat(64), 'par-loose', { parent: 'par-stacked' }), category('failed-precondition'), 'the parent must be committed');
      for (const k of ['par-view', 'par-stacked', 'par-loose', top.key, base.key]) await store.snapshots.remove(k);
    });

    test('snapshots stack as overlay layers; whiteouts and opaque directories hide lower files', async () => {
      const baseMounts = await store.snapshots.prepare('build-base');
      assert.equal(baseMounts[0]?.type, 'bind');
      const base = writableDir(baseMounts);
      mkdirSync(join(base, 'etc'));
      writeFileSync(join(base, 'etc/keep'), 'keep');
      writeFileSync(join(base, 'etc/gone'), 'gone');
      mkdirSync(join(base, 'opaque'));
      writeFileSync(join(base, 'opaque/old'), 'old');
      const committed = await store.snapshots.commit('sha256:' + '1'.repeat(64), 'build-base');
      assert.equal(committed.kind, 'committed');
      await assert.rejects(store.snapshots.stat('build-base'), category('not-found'));

      const childMounts = await store.snapshots.prepare('build-child', committed.key);
      assert.equal(childMounts[0]?.type, 'overlay');
      const upper = writableDir(childMounts);
      mkdirSync(join(upper, 'etc'));
      makeOverlayWhiteout(join(upper, 'etc/gone'));
      mkdirSync(join(upper, 'opaque'));
      setOverlayOpaque(join(upper, 'opaque'));
      writeFileSync(join(upper, 'opaque/new'), 'new');
      const top = await store.snapshots.commit('sha256:' + '2'.repeat(64), 'build-child');
      assert.equal(top.parent, committed.key);

      const viewMounts = await store.snapshots.view('a-view', top.key);
      withMount(viewMounts, (dir) => {
        assert.equal(readFileSync(join(dir, 'etc/keep'), 'utf8'), 'keep');
        assert.equal(existsSync(join(dir, 'etc/gone')), false, 'the whiteout hides the lower file');
        assert.deepEqual(readdirSync(join(dir, 'opaque')), ['new'], 'the opaque dir hides the lower dir');
      });

      const rootfs = await store.snapshots.prepare('container-1', top.key, { labels: { container: 'c1' } });
      withMount(rootfs, (dir) => {
        writeFileSync(join(dir, 'written-by-container'), 'x'.repeat(10000));
        assert.equal(readFileSync(join(dir, 'etc/keep'), 'utf8'), 'keep');
      });
      assert.ok(existsSync(join(writableDir(rootfs), 'written-by-container')), 'writes land in the active snapshot');
      assert.deepEqual((await store.snapshots.mounts('container-1'))[0], rootfs[0]);
      const usage = await store.snapshots.usage('container-1');
      assert.ok(usage.bytes >= 10000 && usage.inodes >= 2, JSON.stringify(usage));
      assert.deepEqual((await store.snapshots.stat('container-1')).labels, { container: 'c1' });

      await assert.rejects(store.snapshots.remove(top.key), category('failed-precondition'), 'a parent with children stays');
      await assert.rejects(store.snapshots.commit('x', top.key), category('failed-precondition'), 'only active snapshots commit');
      await assert.rejects(store.snapshots.prepare('container-1', top.key), category('already-exists'));
      await assert.rejects(store.snapshots.prepare('orphan', 'sha256:' + '9'.repeat(64)), category('not-found'));
      await assert.rejects(store.snapshots.prepare('on-active', 'container-1'), category('failed-precondition'));
      const keys = (await store.snapshots.list()).map((x) => x.key);
      for (const k of [committed.key, top.key, 'a-view', 'container-1']) assert.ok(keys.includes(k), k);
      await store.snapshots.remove('a-view');
      await store.snapshots.remove('container-1');
      await store.snapshots.remove(top.key);
      await store.snapshots.remove(committed.key);
      assert.equal(existsSync(writableDir(rootfs)), false, 'the directory goes with the snapshot');
    });

    test('image records: names move between images and an image goes with its last name', async () => {
      const id1 = sha256Digest('config-1');
      const id2 = sha256Digest('config-2');
      const put = await store.putImage({ id: id1, manifestDigest: sha256Digest('m1'), size: 10, topChainId: '', pinned: false, names: [{ name: 'example.com/app:1', kind: 'tag' }, { name: 'example.com/app:latest', kind: 'tag' }] });
      assert.deepEqual(put.names.map((n) => n.name), ['example.com/app:1', 'example.com/app:latest']);
      assert.equal((await store.getImage('example.com/app:1')).id, id1);
      assert.equal((await store.getImage(id1)).manifestDigest, sha256Digest('m1'));
      await store.putImage({ id: id2, manifestDigest: sha256Digest('m2'), size: 20, topChainId: '', pinned: true, names: [{ name: 'example.com/app:latest', kind: 'tag' }] });
      assert.deepEqual((await store.getImage(id1)).names.map((n) => n.name), ['example.com/app:1']);
      assert.equal((await store.getImage('example.com/app:latest')).id, id2);
      assert.deepEqual(await store.removeImageName('example.com/app:1'), { imageRemoved: true });
      await assert.rejects(store.getImage(id1), category('not-found'));
      await store.deleteImage('example.com/app:latest');
      await assert.rejects(store.getImage(id2), category('not-found'));
      await assert.rejects(store.putImage({ id: 'nope', manifestDigest: sha256Digest('m'), size: 1, topChainId: '', pinned: false, names: [] }), category('invalid-argument'));
    });

    test('image records: a unique prefix of an id finds the image, with or without sha256: (containerd resolves image id prefixes); an ambiguous one is refused', async () => {
      const a = `sha256:e0e01${'0'.repeat(59)}`;
      const b = `sha256:e0e02${'0'.repeat(59)}`;
      for (const id of [a, b]) await store.putImage({ id, manifestDigest: sha256Digest(id), size: 1, topChainId: '', pinned: false, names: [{ name: `example.com/prefix:${id.slice(11, 12)}`, kind: 'tag' }] });
      assert.equal((await store.getImage('e0e01')).id, a);
      assert.equal((await store.getImage('sha256:e0e02')).id, b);
      assert.equal((await store.getImage(a.slice(7))).id, a, 'the hex of a full id');
      await assert.rejects(store.getImage('e0e0'), category('failed-precondition'));
      await assert.rejects(store.getImage('sha256:e0e0'), category('failed-precondition'));
      await assert.rejects(store.getImage('e0e03'), category('not-found'));
      await store.deleteImage('e0e01');
      assert.equal((await store.getImage('e0e0')).id, b, 'unique again once the other is gone');
      await store.deleteImage(b);
    });

    test('image records: an image goes with its last tag, its digest names with it; with another tag left only the one name goes (as containerd, CRI-O and Docker)', async () => {
      const id = sha256Digest('config-tags');
      const tag1 = { name: 'example.com/tags:1', kind: 'tag' as const };
      const tag2 = { name: 'example.com/tags:2', kind: 'tag' as const };
      const digest = { name: `example.com/tags@${sha256Digest('manifest-tags')}`, kind: 'digest' as const };
      await store.putImage({ id, manifestDigest: sha256Digest('manifest-tags'), size: 1, topChainId: '', pinned: false, names: [tag1, tag2, digest] });
      assert.deepEqual(await store.removeImageName(tag1.name), { imageRemoved: false });
      assert.deepEqual((await store.getImage(id)).names.map((n) => n.name).sort(), [digest.name, tag2.name].sort());
      assert.deepEqual(await store.removeImageName(tag2.name), { imageRemoved: true }, 'the last tag takes the digest name along');
      await assert.rejects(store.getImage(id), category('not-found'));
      await assert.rejects(store.getImage(digest.name), category('not-found'));
      // A digest name goes alone while a tag is left; an image pulled by digest only goes with its last digest name.
      const digest2 = { name: `example.org/tags@${sha256Digest('manifest-tags')}`, kind: 'digest' as const };
      await store.putImage({ id, manifestDigest: sha256Digest('manifest-tags'), size: 1, topChainId: '', pinned: false, names: [tag1, digest] });
      assert.deepEqual(await store.removeImageName(digest.name), { imageRemoved: false });
      assert.deepEqual((await store.getImage(id)).names.map((n) => n.name), [tag1.name]);
      assert.deepEqual(await store.removeImageName(tag1.name), { imageRemoved: true });
      await store.putImage({ id, manifestDigest: sha256Digest('manifest-tags'), size: 1, topChainId: '', pinned: false, names: [digest, digest2] });
      assert.deepEqual(await store.removeImageName(digest.name), { imageRemoved: false }, 'another digest name keeps an image that has no tag');
      assert.deepEqual(await store.removeImageName(digest2.name), { imageRemoved: true });
      await assert.rejects(store.getImage(id), category('not-found'));
    });

    test('garbage collection keeps everything referenced or leased and removes the rest', async () => {
      // An image: manifest → config + layer (labels), layer → its snapshot.
      const layerSnap = 'sha256:' + '3'.repeat(64);
      await store.snapshots.prepare('gc-extract');
      await store.snapshots.commit(layerSnap, 'gc-extract');
      const config = await ingest(store, 'gc config');
      const layer = await ingest(store, 'gc layer', undefined, { labels: { [gcRefSnapshot]: layerSnap } });
      const manifest = await ingest(store, 'gc manifest', undefined, { labels: { [`${gcRefContentPrefix}0`]: config.digest, [`${gcRefContentPrefix}1`]: layer.digest } });
      await store.putImage({ id: config.digest, manifestDigest: manifest.digest, size: 1, topChainId: layerSnap, pinned: false, names: [{ name: 'example.com/gc:1', kind: 'tag' }] });
      // A container's rootfs on the layer, a leased blob, an expired lease, and garbage.
      await store.snapshots.prepare('gc-container', layerSnap);
      const lease = await store.createLease({ id: 'pull-1', labels: { why: 'test' } });
      assert.equal(lease.id, 'pull-1');
      await assert.rejects(store.createLease({ id: 'pull-1' }), category('already-exists'));
      const leased = await ingest(store, 'leased blob', undefined, { leaseId: 'pull-1' });
      assert.deepEqual((await store.listLeases()).find((l) => l.id === 'pull-1')?.resources.filter((r) => r.kind === 'blob'), [{ kind: 'blob', ref: leased.digest }]);
      await store.createLease({ id: 'old', expiresAt: new Date(Date.now() - 1000) });
      await store.addLeaseResource('old', { kind: 'blob', ref: sha256Digest('never stored') });
      await assert.rejects(store.addLeaseResource('missing', { kind: 'blob', ref: leased.digest }), category('not-found'));
      const garbage = await ingest(store, 'garbage');
      await store.snapshots.prepare('gc-scratch');
      await store.snapshots.commit('sha256:' + '4'.repeat(64), 'gc-scratch');

      const result = await store.garbageCollect();
      assert.ok(result.removedBlobs.includes(garbage.digest));
      assert.ok(result.removedSnapshots.includes('sha256:' + '4'.repeat(64)));
      assert.deepEqual(result.expiredLeases, ['old']);
      for (const d of [config.digest, layer.digest, manifest.digest, leased.digest]) assert.equal((await store.content.info(d)).digest, d);
      assert.equal((await store.snapshots.stat(layerSnap)).kind, 'committed');
      assert.equal((await store.snapshots.stat('gc-container')).kind, 'active');

      // Without the lease, the leased blob goes; without the container and the image, the rest goes.
      await store.deleteLease('pull-1');
      await store.snapshots.remove('gc-container');
      const r2 = await store.garbageCollect();
      assert.deepEqual(r2.removedBlobs, [leased.digest]);
      // Removing an image starts a collection by itself.
      await store.deleteImage(config.digest);
      const deadline = Date.now() + 10_000;
      while ((await store.content.list()).some((c) => c.digest === manifest.digest) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const d of [config.digest, layer.digest, manifest.digest]) await assert.rejects(store.content.info(d), category('not-found'));
      await assert.rejects(store.snapshots.stat(layerSnap), category('not-found'));
    });

    test('filesystem usage counts committed content and snapshots once', async () => {
      const before = await store.fsUsage();
      assert.ok(before.mountpoint.startsWith('/'));
      const blob = await ingest(store, Buffer.alloc(50_000, 7));
      const after = await store.fsUsage();
      assert.equal(after.content.bytes - before.content.bytes, 50_000);
      assert.equal(after.content.inodes - before.content.inodes, 1);
      await store.content.delete(blob.digest);
      assert.equal((await store.fsUsage()).content.bytes, before.content.bytes);
    });
  });
}
