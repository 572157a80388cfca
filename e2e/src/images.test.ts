// The CRI ImageService end to end: a real stack pulling from a real local
// docker-registry, with the unpacked layers checked on disk.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isCategory } from '@berth/errors';
import { buildImage, pushImage, type BuiltImage, type LayerEntry } from '@berth/oci';
import { RemoteStore } from '@berth/store-api';
import { busyboxRootfs, startRegistry, startStack, startTokenServer, type RegistryHandle, type StackHandle, type TokenServerHandle } from '@berth/testing';

let stack: StackHandle;
let registry: RegistryHandle;
let image: BuiltImage;
let store: RemoteStore;

const lower: LayerEntry[] = [
  ...busyboxRootfs(),
  { type: 'file', path: '/etc/old-file', content: 'old' },
  { type: 'dir', path: '/data' },
  { type: 'dir', path: '/data/replaced' },
  { type: 'file', path: '/data/replaced/a', content: 'a' },
  { type: 'file', path: '/data/setuid', content: '#!/bin/sh\n', mode: 0o4755, uid: 1000, gid: 1000 },
];
const upper: LayerEntry[] = [
  { type: 'dir', path: '/etc' },
  { type: 'file', path: '/etc/.wh.old-file' },
  { type: 'dir', path: '/data' },
  { type: 'dir', path: '/data/replaced' },
  { type: 'file', path: '/data/replaced/.wh..wh..opq' },
  { type: 'file', path: '/data/replaced/b', content: 'b' },
  { type: 'file', path: '/data/orig', content: 'linked' },
  { type: 'link', path: '/data/hard', target: '/data/orig' },
  { type: 'symlink', path: '/data/sym', target: 'orig' },
];

before(async () => {
  registry = await startRegistry();
  image = await buildImage({ layers: [lower, upper], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'], User: '1000:1000' } });
  await pushImage(registry.url, 'test/busybox', 'v1', image);
  stack = await startStack();
  store = new RemoteStore(`unix://${join(stack.dir, 'run/internal/store.sock')}`);
});
after(async () => {
  await store?.close();
  await stack?.stop();
  await registry?.stop();
});

function withView<T>(topChainId: string, fn: (root: string) => T): Promise<T> {
  return (async () => {
    const key = `e2e-view-${Date.now()}`;
    const mounts = await store.snapshots.view(key, topChainId);
    const target = mkdtempSync('/var/tmp/berth-e2e-view-');
    const m = mounts[0]!;
    execFileSync('mount', m.type === 'bind' ? ['--bind', m.source, target] : ['-t', m.type, m.source, '-o', m.options.join(','), target]);
    try {
      return fn(target);
    } finally {
      execFileSync('umount', [target]);
      rmSync(target, { recursive: true });
      await store.snapshots.remove(key);
    }
  })();
}

describe('pulling from a registry', () => {
  const name = () => `${registry.host}/test/busybox:v1`;

  test('PullImage returns the image id and the image is listed with its tag and digest', async () => {
    const { imageRef } = await stack.cri.image.pullImage({ image: { image: name(), annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, image.configDigest);
    const { images } = await stack.cri.image.listImages({ filter: undefined });
    const listed = images.find((i) => i.id === image.configDigest);
    assert.ok(listed);
    assert.deepEqual(listed.repoTags, [name()]);
    assert.deepEqual(listed.repoDigests, [`${registry.host}/test/busybox@${image.manifestDigest}`]);
    assert.equal(listed.uid?.value, 1000n);
    const size = image.manifest.config.size + image.manifest.layers.reduce((a, l) => a + l.size, 0);
    assert.equal(listed.size, BigInt(size));
  });

  test('the layers are unpacked with whiteouts, opaque directories, hard links, symlinks and modes', async () => {
    const record = await store.getImage(image.configDigest);
    await withView(record.topChainId, (root) => {
      assert.equal(existsSync(join(root, 'etc/old-file')), false, 'whited out');
      assert.deepEqual(readdirSync(join(root, 'data/replaced')), ['b'], 'opaque');
      assert.equal(statSync(join(root, 'data/hard')).ino, statSync(join(root, 'data/orig')).ino, 'hard link');
      assert.equal(readFileSync(join(root, 'data/sym'), 'utf8'), 'linked');
      const st = statSync(join(root, 'data/setuid'));
      assert.equal(st.mode & 0o7777, 0o4755);
      assert.equal(st.uid, 1000);
      assert.equal(execFileSync('chroot', [root, '/bin/echo', 'runs'], { encoding: 'utf8' }), 'runs\n');
    });
  });

  test('ImageStatus finds the image by tag, digest and id; an unknown image is no image, not an error', async () => {
    const spec = (image: string) => ({ image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' });
    for (const ref of [name(), `${registry.host}/test/busybox@${image.manifestDigest}`, image.configDigest]) {
      assert.equal((await stack.cri.image.imageStatus({ image: spec(ref), verbose: false })).image?.id, image.configDigest, ref);
    }
    assert.equal((await stack.cri.image.imageStatus({ image: spec('example.com/none:1'), verbose: false })).image, undefined);
    const fs = await stack.cri.image.imageFsInfo({});
    assert.ok((fs.imageFilesystems[0]?.usedBytes?.value ?? 0n) > 0n);
    assert.ok(fs.imageFilesystems[0]?.fsId?.mountpoint.startsWith('/'));
  });

  test('a second pull of the same image is served from the store', async () => {
    const { imageRef } = await stack.cri.image.pullImage({ image: { image: name(), annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, image.configDigest);
  });

  test('bad references and missing images get clear errors', async () => {
    const pull = (image: string) => stack.cri.image.pullImage({ image: { image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, auth: undefined, sandboxConfig: undefined });
    await assert.rejects(pull('Not A Reference'), (e: Error) => isCategory(e, 'invalid-argument'));
    await assert.rejects(pull(`${registry.host}/test/missing:1`), (e: Error) => isCategory(e, 'not-found'));
  });

  test('a layer that escapes the root is refused and nothing is left', async () => {
    const evil = await buildImage({ layers: [[{ type: 'file', path: '../../escaped', content: 'x' }]] });
    await pushImage(registry.url, 'test/evil', 'v1', evil);
    await assert.rejects(
      stack.cri.image.pullImage({ image: { image: `${registry.host}/test/evil:v1`, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, auth: undefined, sandboxConfig: undefined }),
      (e: Error) => isCategory(e, 'failed-precondition') && /escapes the root/.test(e.message),
    );
    await assert.rejects(store.getImage(evil.configDigest), (e: Error) => isCategory(e, 'not-found'));
    assert.ok(!(await store.snapshots.list()).some((s) => s.kind === 'active'), 'no half-unpacked snapshot');
    assert.equal(existsSync(join(stack.dir, 'escaped')), false);
  });

  test('berthctl pulls, lists, inspects and reports image filesystem usage', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const ctl = (...args: string[]) => promisify(execFile)(process.execPath, [join(import.meta.dirname, '../../apps/berthctl/dist/main.js'), '-r', stack.socket, ...args]);
    assert.match((await ctl('pull', name())).stdout, new RegExp(`Image is up to date for ${image.configDigest}`));
    const table = (await ctl('images')).stdout;
    assert.match(table, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE$/m);
    assert.match(table, new RegExp(`^${registry.host}/test/busybox\\s+v1\\s+${image.configDigest.slice(7, 20)}\\s`, 'm'));
    const inspected = JSON.parse((await ctl('inspecti', name())).stdout) as { status: { id: string }; info: { info: { manifestDigest: string } } };
    assert.equal(inspected.status.id, image.configDigest);
    assert.equal(inspected.info.info.manifestDigest, image.manifestDigest);
    const fs = JSON.parse((await ctl('imagefsinfo')).stdout) as { imageFilesystems: Array<{ usedBytes: { value: string } }> };
    assert.ok(Number(fs.imageFilesystems[0]?.usedBytes.value) > 0);
  });

  test('RemoveImage by tag, then by id; removing again succeeds', async () => {
    const spec = (image: string) => ({ image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' });
    await stack.cri.image.removeImage({ image: spec(name()) });
    const left = (await stack.cri.image.imageStatus({ image: spec(image.configDigest), verbose: false })).image;
    assert.deepEqual(left?.repoTags, [], 'the tag is gone, the digest name stays');
    await stack.cri.image.removeImage({ image: spec(image.configDigest) });
    assert.equal((await stack.cri.image.imageStatus({ image: spec(image.configDigest), verbose: false })).image, undefined);
    await stack.cri.image.removeImage({ image: spec(image.configDigest) });
  });
});

describe('registry authentication', () => {
  let basic: RegistryHandle;
  let tokens: TokenServerHandle;
  let bearer: RegistryHandle;
  let small: BuiltImage;
  const credentials = { username: 'alice', password: 's3cret' };
  const spec = (image: string) => ({ image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' });
  const auth = (username: string, password: string) => ({ username, password, auth: '', serverAddress: '', identityToken: '', registryToken: '' });

  before(async () => {
    small = await buildImage({ layers: [[{ type: 'file', path: '/hello', content: 'auth' }]] });
    basic = await startRegistry({ basicAuth: credentials });
    await pushImage(basic.url, 'private/app', 'v1', small, { authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` });
    tokens = await startTokenServer({ alice: 's3cret' });
    bearer = await startRegistry({ tokenAuth: tokens });
    await pushImage(bearer.url, 'private/app', 'v1', small, { authorization: `Bearer ${tokens.mint('private/app', ['pull', 'push'])}` });
  });
  after(async () => {
    await basic?.stop();
    await bearer?.stop();
    await tokens?.stop();
  });

  test('basic auth: refused without credentials or with wrong ones, pulled with the right ones', async () => {
    const image = `${basic.host}/private/app:v1`;
    await assert.rejects(stack.cri.image.pullImage({ image: spec(image), auth: undefined, sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    await assert.rejects(stack.cri.image.pullImage({ image: spec(image), auth: auth('alice', 'wrong'), sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    const { imageRef } = await stack.cri.image.pullImage({ image: spec(image), auth: auth('alice', 's3cret'), sandboxConfig: undefined });
    assert.equal(imageRef, small.configDigest);
    await stack.cri.image.removeImage({ image: spec(image) });
  });

  test('bearer tokens: the challenge is followed with a scoped token request', async () => {
    const image = `${bearer.host}/private/app:v1`;
    await assert.rejects(stack.cri.image.pullImage({ image: spec(image), auth: undefined, sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    await assert.rejects(stack.cri.image.pullImage({ image: spec(image), auth: auth('alice', 'nope'), sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    const { imageRef } = await stack.cri.image.pullImage({ image: spec(image), auth: auth('alice', 's3cret'), sandboxConfig: undefined });
    assert.equal(imageRef, small.configDigest);
    assert.ok(tokens.requests.some((r) => r.user === 'alice' && r.scope === 'repository:private/app:pull'), JSON.stringify(tokens.requests));
    await stack.cri.image.removeImage({ image: spec(image) });
  });
});
