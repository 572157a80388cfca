// The CRI ImageService end to end: a real stack pulling from a real local
// docker-registry, with the unpacked layers checked on disk.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { imageSpec } from '@berth/client';
import { isCategory } from '@berth/errors';
import { buildImage, pushBlobs, pushImage, pushManifest, type BuiltImage, type LayerEntry } from '@berth/oci';
import { RemoteStore } from '@berth/store-api';
import { busyboxRootfs, makeTestPki, startFakeRegistry, startRegistry, startStack, startTokenServer, waitFor, type FakeRegistryHandle, type RegistryHandle, type StackHandle, type TokenServerHandle } from '@berth/testing';

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
  // A mirror: registry.example.test (which does not resolve) is served by the local registry.
  const hostsDir = mkdtempSync('/tmp/berth-hosts-');
  mkdirSync(join(hostsDir, 'registry.example.test'));
  writeFileSync(join(hostsDir, 'registry.example.test', 'hosts.toml'), `server = "https://registry.example.test"\n\n[host."http://${registry.host}"]\ncapabilities = ["pull", "resolve"]\n`);
  stack = await startStack({ extraConfig: `[image]\nprogressTimeoutSeconds = 2\nhostsDir = "${hostsDir}"\n` });
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
    const { imageRef } = await stack.cri.image.pullImage({ image: imageSpec(name()), auth: undefined, sandboxConfig: undefined });
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

  test('a zstd-compressed image pulls and unpacks', async () => {
    const zimage = await buildImage({ layers: [lower.filter((e) => e.path.startsWith('/bin') || e.path.startsWith('/lib') || e.path.startsWith('/usr')), [{ type: 'file', path: '/zstd-was-here', content: 'yes' }]], compression: 'zstd' });
    assert.equal(zimage.manifest.layers[0]?.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    await pushImage(registry.url, 'test/zstd', 'v1', zimage);
    const spec = imageSpec(`${registry.host}/test/zstd:v1`);
    const { imageRef } = await stack.cri.image.pullImage({ image: spec, auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, zimage.configDigest);
    const record = await store.getImage(imageRef);
    await withView(record.topChainId, (root) => {
      assert.equal(readFileSync(join(root, 'zstd-was-here'), 'utf8'), 'yes');
      assert.equal(execFileSync('chroot', [root, '/bin/echo', 'zstd'], { encoding: 'utf8' }), 'zstd\n');
    });
    await stack.cri.image.removeImage({ image: { ...spec, image: imageRef } });
  });

  test('a mirror serves an upstream name, and the image keeps the upstream name', async () => {
    const upstream = 'registry.example.test/test/busybox:v1';
    const spec = imageSpec(upstream);
    const { imageRef } = await stack.cri.image.pullImage({ image: spec, auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, image.configDigest);
    const status = await stack.cri.image.imageStatus({ image: spec, verbose: false });
    assert.ok(status.image?.repoTags.includes(upstream), JSON.stringify(status.image?.repoTags));
    assert.ok(status.image?.repoDigests.includes(`registry.example.test/test/busybox@${image.manifestDigest}`));
    await stack.cri.image.removeImage({ image: spec });
  });

  test('ImageStatus finds the image by tag, digest and id; an unknown image is no image, not an error', async () => {
    for (const ref of [name(), `${registry.host}/test/busybox@${image.manifestDigest}`, image.configDigest]) {
      assert.equal((await stack.cri.image.imageStatus({ image: imageSpec(ref), verbose: false })).image?.id, image.configDigest, ref);
    }
    assert.equal((await stack.cri.image.imageStatus({ image: imageSpec('example.com/none:1'), verbose: false })).image, undefined);
    const fs = await stack.cri.image.imageFsInfo({});
    assert.ok((fs.imageFilesystems[0]?.usedBytes?.value ?? 0n) > 0n);
    assert.ok(fs.imageFilesystems[0]?.fsId?.mountpoint.startsWith('/'));
  });

  test('a second pull of the same image is served from the store; a tag moved to another image pulls that one', async () => {
    const { imageRef } = await stack.cri.image.pullImage({ image: imageSpec(name()), auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, image.configDigest);
    // The tag now names another image (one more layer): the re-pull must not answer with the old one.
    const moved = await buildImage({ layers: [lower, upper, [{ type: 'file', path: '/etc/moved', content: 'x'.repeat(200_000) }]], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] } });
    const usedBefore = (await stack.cri.image.imageFsInfo({})).imageFilesystems[0]!;
    assert.equal((await stack.cri.image.imageFsInfo({})).imageFilesystems[0]?.timestamp, usedBefore.timestamp, 'polled again at once: the same measurement');
    await pushImage(registry.url, 'test/busybox', 'moving', image);
    const moving = `${registry.host}/test/busybox:moving`;
    assert.equal((await stack.cri.image.pullImage({ image: imageSpec(moving), auth: undefined, sandboxConfig: undefined })).imageRef, image.configDigest);
    await pushImage(registry.url, 'test/busybox', 'moving', moved);
    assert.equal((await stack.cri.image.pullImage({ image: imageSpec(moving), auth: undefined, sandboxConfig: undefined })).imageRef, moved.configDigest);
    const usedAfter = (await stack.cri.image.imageFsInfo({})).imageFilesystems[0]!;
    assert.ok(usedAfter.usedBytes!.value >= usedBefore.usedBytes!.value + 200_000n, `a pull shows in ImageFsInfo at once: ${usedBefore.usedBytes!.value} -> ${usedAfter.usedBytes!.value}`);
    const status = await stack.cri.image.imageStatus({ image: imageSpec(moving), verbose: false });
    assert.equal(status.image?.id, moved.configDigest);
    assert.ok(!(await stack.cri.image.imageStatus({ image: imageSpec(image.configDigest), verbose: false })).image?.repoTags.includes(moving), 'the tag left the old image');
    await stack.cri.image.removeImage({ image: imageSpec(moved.configDigest) });
  });

  test('bad references and missing images get clear errors', async () => {
    const pull = (image: string) => stack.cri.image.pullImage({ image: imageSpec(image), auth: undefined, sandboxConfig: undefined });
    await assert.rejects(pull('Not A Reference'), (e: Error) => isCategory(e, 'invalid-argument'));
    await assert.rejects(pull(`${registry.host}/test/missing:1`), (e: Error) => isCategory(e, 'not-found'));
  });

  test('a layer that escapes the root is refused and nothing is left', async () => {
    const evil = await buildImage({ layers: [[{ type: 'file', path: '../../escaped', content: 'x' }]] });
    await pushImage(registry.url, 'test/evil', 'v1', evil);
    await assert.rejects(
      stack.cri.image.pullImage({ image: imageSpec(`${registry.host}/test/evil:v1`), auth: undefined, sandboxConfig: undefined }),
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
    // A name not pulled yet (its layers are here): every layer reports its progress.
    await pushImage(registry.url, 'test/busybox', 'ctl', image);
    const pulled = await ctl('pull', `${registry.host}/test/busybox:ctl`);
    assert.match(pulled.stdout, new RegExp(`Image is up to date for ${image.configDigest}`));
    assert.match((await ctl('pull', name())).stdout, new RegExp(`Image is up to date for ${image.configDigest}`));
    for (const layer of image.manifest.layers) assert.match(pulled.stderr, new RegExp(`^${layer.digest.slice(7, 19)}: done`, 'm'), `progress for every layer:\n${pulled.stderr}`);
    const table = (await ctl('images')).stdout;
    assert.match(table, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE$/m);
    assert.match(table, new RegExp(`^${registry.host}/test/busybox\\s+v1\\s+${image.configDigest.slice(7, 20)}\\s`, 'm'));
    const inspected = JSON.parse((await ctl('inspecti', name())).stdout) as { status: { id: string }; info: { info: { manifestDigest: string } } };
    assert.equal(inspected.status.id, image.configDigest);
    assert.equal(inspected.info.info.manifestDigest, image.manifestDigest);
    const fs = JSON.parse((await ctl('imagefsinfo')).stdout) as { imageFilesystems: Array<{ usedBytes: { value: string } }> };
    assert.ok(Number(fs.imageFilesystems[0]?.usedBytes.value) > 0);
    await ctl('rmi', `${registry.host}/test/busybox:ctl`);
  });

  const status = async (ref: string) => (await stack.cri.image.imageStatus({ image: imageSpec(ref), verbose: false })).image;
  const listed = async (id: string) => (await stack.cri.image.listImages({ filter: undefined })).images.find((i) => i.id === id);
  /** A small image of its own (one layer nothing else has), pushed under `repo` with each tag and pulled by each. */
  async function pulledImage(repo: string, tags: string[]): Promise<BuiltImage> {
    const built = await buildImage({ layers: [[{ type: 'file', path: '/own', content: randomBytes(16).toString('hex') }]] });
    for (const tag of tags) {
      await pushImage(registry.url, repo, tag, built);
      await stack.cri.image.pullImage({ image: imageSpec(`${registry.host}/${repo}:${tag}`), auth: undefined, sandboxConfig: undefined });
    }
    return built;
  }

  test('RemoveImage of the last tag removes the image, its digest name with it, then its blobs and snapshots (containerd, CRI-O and Docker remove an image with its last tag); removing again succeeds', async () => {
    // By now name() is the image's one tag (the others were removed or moved above), beside its repo digests (the mirror's too).
    const before = await status(image.configDigest);
    assert.deepEqual(before?.repoTags, [name()]);
    assert.ok(before?.repoDigests.includes(`${registry.host}/test/busybox@${image.manifestDigest}`), JSON.stringify(before?.repoDigests));
    const { topChainId } = await store.getImage(image.configDigest);
    await stack.cri.image.removeImage({ image: imageSpec(name()) });
    assert.equal(await status(image.configDigest), undefined, 'ImageStatus by its id: no image');
    for (const digest of before!.repoDigests) assert.equal(await status(digest), undefined, `nor by ${digest}`);
    assert.equal(await listed(image.configDigest), undefined, 'not listed, not even as <none>');
    await waitFor('its blobs and snapshots collected', async () => {
      const blobs = await Promise.all([image.configDigest, image.manifestDigest, ...image.manifest.layers.map((l) => l.digest)].map((d) => store.content.info(d).then(() => d, () => undefined)));
      const snapshots = (await store.snapshots.list()).filter((s) => s.key === topChainId);
      return blobs.every((b) => b === undefined) && snapshots.length === 0 ? true : undefined;
    });
    await stack.cri.image.removeImage({ image: imageSpec(name()) });
    await stack.cri.image.removeImage({ image: imageSpec(image.configDigest) });
  });

  test('RemoveImage of one of two tags removes that tag only (CRI-O and Docker untag while other tags are left; containerd removes every name)', async () => {
    const two = await pulledImage('test/tags', ['a', 'b']);
    const [a, b] = ['a', 'b'].map((t) => `${registry.host}/test/tags:${t}`);
    assert.deepEqual((await status(two.configDigest))?.repoTags.sort(), [a, b]);
    await stack.cri.image.removeImage({ image: imageSpec(a!) });
    const left = await status(b!);
    assert.equal(left?.id, two.configDigest);
    assert.deepEqual(left?.repoTags, [b]);
    assert.deepEqual(left?.repoDigests, [`${registry.host}/test/tags@${two.manifestDigest}`]);
    assert.deepEqual((await listed(two.configDigest))?.repoTags, [b], 'listed with the tag left');
    assert.equal(await status(a!), undefined);
    await stack.cri.image.removeImage({ image: imageSpec(b!) });
    assert.equal(await status(two.configDigest), undefined, 'and with the last one the image');
  });

  test('ImageStatus, ListImages and RemoveImage take a unique prefix of the image id, with or without sha256: (containerd resolves a unique prefix of the image id); an ambiguous one is refused with FAILED_PRECONDITION and removes nothing', async () => {
    const one = await pulledImage('test/prefix', ['1']);
    const hex = one.configDigest.slice('sha256:'.length);
    for (const ref of [hex.slice(0, 12), `sha256:${hex.slice(0, 12)}`, hex, one.configDigest]) assert.equal((await status(ref))?.id, one.configDigest, ref);
    assert.deepEqual((await stack.cri.image.listImages({ filter: { image: imageSpec(hex.slice(0, 12)) } })).images.map((i) => i.id), [one.configDigest]);
    // Images until two ids share their first hex digit: at most 17.
    const extra: string[] = [];
    const firstShared = async () => {
      const ids = (await stack.cri.image.listImages({ filter: undefined })).images.map((i) => i.id.slice('sha256:'.length));
      return ids.find((id, n) => ids.findIndex((other) => other[0] === id[0]) !== n)?.[0];
    };
    let shared = await firstShared();
    while (shared === undefined) {
      extra.push((await pulledImage('test/prefix', [`extra${extra.length}`])).configDigest);
      shared = await firstShared();
    }
    const before = (await stack.cri.image.listImages({ filter: undefined })).images.length;
    await assert.rejects(stack.cri.image.imageStatus({ image: imageSpec(shared), verbose: false }), (e: Error) => isCategory(e, 'failed-precondition') && /ambiguous/.test(e.message));
    await assert.rejects(stack.cri.image.removeImage({ image: imageSpec(`sha256:${shared}`) }), (e: Error) => isCategory(e, 'failed-precondition'));
    assert.equal((await stack.cri.image.listImages({ filter: undefined })).images.length, before, 'nothing removed');
    assert.deepEqual((await stack.cri.image.listImages({ filter: { image: imageSpec(shared) } })).images, [], 'a list filter naming no one image lists none');
    await stack.cri.image.removeImage({ image: imageSpec(hex.slice(0, 12)) });
    assert.equal(await status(one.configDigest), undefined, 'removed by its prefix');
    for (const id of extra) await stack.cri.image.removeImage({ image: imageSpec(id) });
  });
});

describe('the built-in sandbox image', () => {
  test('is imported from its OCI layout without any registry', async () => {
    const spec = imageSpec('berth.local/pause:0.1.0');
    const deadline = Date.now() + 15_000;
    let found = (await stack.cri.image.imageStatus({ image: spec, verbose: false })).image;
    while (found === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      found = (await stack.cri.image.imageStatus({ image: spec, verbose: false })).image;
    }
    assert.ok(found, 'imported');
    assert.deepEqual(found.repoTags, ['berth.local/pause:0.1.0']);
    assert.equal(found.uid?.value, 65535n);
    const record = await store.getImage(found.id);
    await withView(record.topChainId, (root) => {
      assert.ok(statSync(join(root, 'pause')).isFile());
      assert.match(execFileSync(join(root, 'pause'), ['--version'], { encoding: 'utf8' }), /^berth-pause /);
    });
  });
});

describe('multi-architecture images', () => {
  test('an index resolves to the manifest of this node\'s platform', async () => {
    const { nodePlatform } = await import('@berth/spec');
    const here = nodePlatform();
    const other = here.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64', variant: 'v8' };
    const mine = await buildImage({ layers: [[{ type: 'file', path: '/arch', content: here.architecture }]], platform: here });
    const theirs = await buildImage({ layers: [[{ type: 'file', path: '/arch', content: other.architecture }]], platform: other });
    for (const img of [mine, theirs]) {
      await pushBlobs(registry.url, 'test/multi', [...img.blobs].filter(([d]) => d !== img.manifestDigest));
      await pushManifest(registry.url, 'test/multi', img.manifestDigest, img.manifestBytes, 'application/vnd.oci.image.manifest.v1+json');
    }
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: theirs.manifestDigest, size: theirs.manifestBytes.length, platform: other },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: mine.manifestDigest, size: mine.manifestBytes.length, platform: here },
        ],
      }),
    );
    await pushManifest(registry.url, 'test/multi', 'v1', index, 'application/vnd.oci.image.index.v1+json');
    const spec = imageSpec(`${registry.host}/test/multi:v1`);
    const { imageRef } = await stack.cri.image.pullImage({ image: spec, auth: undefined, sandboxConfig: undefined });
    assert.equal(imageRef, mine.configDigest);
    const status = await stack.cri.image.imageStatus({ image: spec, verbose: false });
    assert.deepEqual(status.image?.repoDigests, [`${registry.host}/test/multi@${mine.manifestDigest}`]);
    await stack.cri.image.removeImage({ image: { ...spec, image: imageRef } });
  });
});

describe('registries over TLS', () => {
  let tlsRegistry: RegistryHandle;
  let mtlsRegistry: RegistryHandle;
  let pki: ReturnType<typeof makeTestPki>;
  const hostsDir = () => (JSON.parse(readFileSync(stack.configPath, 'utf8').match(/hostsDir = (".*")/)?.[1] ?? '""') as string);
  const mirror = (name: string, body: string) => {
    mkdirSync(join(hostsDir(), name), { recursive: true });
    writeFileSync(join(hostsDir(), name, 'hosts.toml'), body);
  };
  const pullAs = (name: string) => stack.cri.image.pullImage({ image: imageSpec(`${name}/test/busybox:v1`), auth: undefined, sandboxConfig: undefined });

  before(async () => {
    pki = makeTestPki();
    // The same content as the plain registry, over https, and over https with client certificates.
    tlsRegistry = await startRegistry({ storageDir: registry.storageDir, tls: { cert: pki.serverCert, key: pki.serverKey } });
    mtlsRegistry = await startRegistry({ storageDir: registry.storageDir, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca } });
  });
  after(async () => {
    await tlsRegistry?.stop();
    await mtlsRegistry?.stop();
  });

  test('a mirror with a custom CA is trusted; without it, or with skip_verify, as configured', async () => {
    mirror('ca.example.test', `[host."https://${tlsRegistry.host}"]\nca = "${pki.ca}"\n`);
    assert.equal((await pullAs('ca.example.test')).imageRef, image.configDigest);
    mirror('noca.example.test', `[host."https://${tlsRegistry.host}"]\n`);
    await assert.rejects(pullAs('noca.example.test'), (e: Error) => isCategory(e, 'unavailable'));
    mirror('skip.example.test', `[host."https://${tlsRegistry.host}"]\nskip_verify = true\n`);
    assert.equal((await pullAs('skip.example.test')).imageRef, image.configDigest);
  });

  test('a registry that wants a client certificate gets the configured one', async () => {
    mirror('mtls.example.test', `[host."https://${mtlsRegistry.host}"]\nca = "${pki.ca}"\nclient = [["${pki.clientCert}", "${pki.clientKey}"]]\n`);
    assert.equal((await pullAs('mtls.example.test')).imageRef, image.configDigest);
    mirror('nocert.example.test', `[host."https://${mtlsRegistry.host}"]\nca = "${pki.ca}"\n`);
    await assert.rejects(pullAs('nocert.example.test'), (e: Error) => isCategory(e, 'unavailable'));
  });
});

describe('registry authentication', () => {
  let basic: RegistryHandle;
  let tokens: TokenServerHandle;
  let bearer: RegistryHandle;
  let small: BuiltImage;
  const credentials = { username: 'alice', password: 's3cret' };
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
    await assert.rejects(stack.cri.image.pullImage({ image: imageSpec(image), auth: undefined, sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    await assert.rejects(stack.cri.image.pullImage({ image: imageSpec(image), auth: auth('alice', 'wrong'), sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    const { imageRef } = await stack.cri.image.pullImage({ image: imageSpec(image), auth: auth('alice', 's3cret'), sandboxConfig: undefined });
    assert.equal(imageRef, small.configDigest);
    await stack.cri.image.removeImage({ image: imageSpec(image) });
  });

  test('credentials stay with the registry: a redirect to another host gets none', async () => {
    // An image of its own, so nothing of it is in the store already.
    const own = await buildImage({ layers: [[{ type: 'file', path: '/redirected', content: randomBytes(1024) }]] });
    const cdnSaw: Array<string | undefined> = [];
    const cdn = await startFakeRegistry([
      (req, res) => {
        const bytes = own.blobs.get((req.url ?? '').split('/').pop() ?? '');
        if (bytes === undefined) return false;
        cdnSaw.push(req.headers.authorization);
        res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
        return true;
      },
    ]);
    const expected = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    const origin = await startFakeRegistry([
      (req, res) => {
        if (req.headers.authorization !== expected) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="berth-test"' }).end();
          return true;
        }
        const m = /^\/v2\/private\/app\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
        if (m === null) return false;
        if (m[1] === 'manifests') res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(own.manifestBytes);
        else res.writeHead(307, { location: `${cdn.url}/blobs/${m[2]}` }).end();
        return true;
      },
    ]);
    try {
      const image = `${origin.host}/private/app:v1`;
      const { imageRef } = await stack.cri.image.pullImage({ image: imageSpec(image), auth: auth('alice', 's3cret'), sandboxConfig: undefined });
      assert.equal(imageRef, own.configDigest);
      assert.ok(cdnSaw.length >= 1, 'blobs came from the other host');
      assert.deepEqual(cdnSaw.filter((a) => a !== undefined), [], 'no credentials went to it');
      await stack.cri.image.removeImage({ image: imageSpec(image) });
    } finally {
      await origin.stop();
      await cdn.stop();
    }
  });

  test('bearer tokens: the challenge is followed with a scoped token request', async () => {
    const image = `${bearer.host}/private/app:v1`;
    await assert.rejects(stack.cri.image.pullImage({ image: imageSpec(image), auth: undefined, sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    await assert.rejects(stack.cri.image.pullImage({ image: imageSpec(image), auth: auth('alice', 'nope'), sandboxConfig: undefined }), (e: Error) => isCategory(e, 'permission-denied'));
    const { imageRef } = await stack.cri.image.pullImage({ image: imageSpec(image), auth: auth('alice', 's3cret'), sandboxConfig: undefined });
    assert.equal(imageRef, small.configDigest);
    assert.ok(tokens.requests.some((r) => r.user === 'alice' && r.scope === 'repository:private/app:pull'), JSON.stringify(tokens.requests));
    await stack.cri.image.removeImage({ image: imageSpec(image) });
  });
});

describe('hostile registries', () => {
  let fake: FakeRegistryHandle;
  let good: BuiltImage;
  const pull = (repo: string) => stack.cri.image.pullImage({ image: imageSpec(`${fake.host}/${repo}:v1`), auth: undefined, sandboxConfig: undefined });
  const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
  let flakyServed = false;
  let norangeServed = false;

  before(async () => {
    // Random bytes do not compress: the layer blob is large enough to break off part-way.
    good = await buildImage({ layers: [[{ type: 'file', path: '/data', content: randomBytes(256 * 1024) }]] });
    const layer = good.manifest.layers[0]!;
    const layerBytes = good.blobs.get(layer.digest)!;
    const manifestFor = (body: object, type = ociManifest) => (res: ServerResponse) => res.writeHead(200, { 'content-type': type }).end(JSON.stringify(body));
    fake = await startFakeRegistry([
      async (req, res) => {
        const m = /^\/v2\/([a-z]+)\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
        if (m === null) return false;
        const [, repo, kind, reference] = m;
        if (kind === 'manifests') {
          if (repo === 'confused') manifestFor({ schemaVersion: 2, manifests: [], layers: [] })(res);
          else if (repo === 'claims') manifestFor({ ...good.manifest, mediaType: 'application/vnd.oci.image.index.v1+json' }, 'application/vnd.oci.image.index.v1+json')(res);
          else if (repo === 'huge') res.writeHead(200, { 'content-type': ociManifest }).end(Buffer.alloc(5 * 1024 * 1024, 32));
          else if (repo === 'schemaone') manifestFor({ schemaVersion: 1, name: 'x', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws')(res);
          else res.writeHead(200, { 'content-type': ociManifest }).end(good.manifestBytes);
          return true;
        }
        const bytes = good.blobs.get(reference!);
        if (bytes === undefined) return false;
        if (reference !== layer.digest || repo === 'fine') {
          res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
          return true;
        }
        if (repo === 'garbage') {
          res.writeHead(200, { 'content-length': layerBytes.length }).end(Buffer.alloc(layerBytes.length, 1));
        } else if (repo === 'stall') {
          res.writeHead(200, { 'content-length': layerBytes.length });
          res.write(layerBytes.subarray(0, 1000)); // then nothing
        } else if (repo === 'reset') {
          res.writeHead(200, { 'content-length': layerBytes.length });
          res.write(layerBytes.subarray(0, 5000), () => req.socket.destroy());
        } else if (repo === 'flaky') {
          const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
          if (!flakyServed) {
            flakyServed = true;
            res.writeHead(200, { 'content-length': layerBytes.length });
            res.write(layerBytes.subarray(0, 100_000), () => req.socket.destroy());
          } else if (range !== null) {
            const from = Number(range[1]);
            res.writeHead(206, { 'content-length': layerBytes.length - from, 'content-range': `bytes ${from}-${layerBytes.length - 1}/${layerBytes.length}` }).end(layerBytes.subarray(from));
          } else res.writeHead(200, { 'content-length': layerBytes.length }).end(layerBytes);
        } else if (repo === 'norange') {
          // Breaks off once, then answers every request, Range or not, with the whole blob.
          if (!norangeServed) {
            norangeServed = true;
            res.writeHead(200, { 'content-length': layerBytes.length });
            res.write(layerBytes.subarray(0, 100_000), () => req.socket.destroy());
          } else res.writeHead(200, { 'content-length': layerBytes.length }).end(layerBytes);
        }
        return true;
      },
    ]);
  });
  after(async () => {
    await fake?.stop();
  });

  const nothingLeft = async () => {
    await assert.rejects(store.getImage(good.configDigest), (e: Error) => isCategory(e, 'not-found'));
    assert.ok(!(await store.snapshots.list()).some((s) => s.kind === 'active'), 'no half-unpacked snapshot');
  };

  test('manifest/index confusion, schema 1 and oversized manifests are refused', async () => {
    await assert.rejects(pull('confused'), (e: Error) => isCategory(e, 'failed-precondition') && /neither clearly a manifest nor an index/.test(e.message));
    await assert.rejects(pull('claims'), (e: Error) => isCategory(e, 'failed-precondition') && /claims the media type/.test(e.message));
    await assert.rejects(pull('schemaone'), (e: Error) => isCategory(e, 'failed-precondition') && /schema 1/.test(e.message));
    await assert.rejects(pull('huge'), (e: Error) => isCategory(e, 'failed-precondition') && /larger than/.test(e.message));
    await nothingLeft();
  });

  test('a blob that does not match its digest is refused', async () => {
    await assert.rejects(pull('garbage'), (e: Error) => isCategory(e, 'failed-precondition') && /digest mismatch/.test(e.message));
    await assert.rejects(store.content.info(good.manifest.layers[0]!.digest), (e: Error) => isCategory(e, 'not-found'), 'the wrong bytes were not kept');
    await nothingLeft();
  });

  test('a registry that stalls fails the pull within the progress timeout', async () => {
    const started = Date.now();
    await assert.rejects(pull('stall'), (e: Error) => isCategory(e, 'deadline-exceeded') && /no bytes for 2 s/.test(e.message));
    assert.ok(Date.now() - started < 20_000);
    await nothingLeft();
  });

  test('a registry that keeps resetting the connection fails cleanly', async () => {
    await assert.rejects(pull('reset'), (e: Error) => isCategory(e, 'unavailable'));
    await nothingLeft();
  });

  test('a download broken once resumes with a Range request and completes', async () => {
    const { imageRef } = await pull('flaky');
    assert.equal(imageRef, good.configDigest);
    assert.ok(fake.log.some((l) => /\/v2\/flaky\/blobs\/.* bytes=\d+-$/.test(l)), fake.log.join('\n'));
    await stack.cri.image.removeImage({ image: imageSpec(good.configDigest) });
  });

  test('a registry that ignores Range after a break: the download starts over and the layer still unpacks whole', async () => {
    // What the broken download stored is dropped, not kept in front of the whole blob: the
    // layer's digest and diff ID still check out.
    const { imageRef } = await pull('norange');
    assert.equal(imageRef, good.configDigest);
    const layerGets = fake.log.filter((l) => l.includes(`/v2/norange/blobs/${good.manifest.layers[0]!.digest}`));
    assert.equal(layerGets.length, 2, layerGets.join('\n'));
    assert.match(layerGets[1]!, /bytes=\d+-$/, 'the second asked for the rest');
    await stack.cri.image.removeImage({ image: imageSpec(good.configDigest) });
    assert.ok(!(await store.snapshots.list()).some((s) => s.kind === 'active'), 'no half-unpacked snapshot');
  });

  test('concurrent pulls of one image fetch each blob once', async () => {
    // Start from nothing: removing the image above lets GC take its blobs.
    const deadline = Date.now() + 10_000;
    while ((await store.content.list()).some((c) => c.digest === good.configDigest) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(store.content.info(good.configDigest), (e: Error) => isCategory(e, 'not-found'));
    const before = fake.log.length;
    // Half by tag, half by digest: two pulls in flight, for the same blobs.
    const byDigest = () => stack.cri.image.pullImage({ image: imageSpec(`${fake.host}/fine@${good.manifestDigest}`), auth: undefined, sandboxConfig: undefined });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? pull('fine') : byDigest())));
    assert.ok(results.every((r) => r.imageRef === good.configDigest));
    const blobGets = fake.log.slice(before).filter((l) => l.startsWith('GET /v2/fine/blobs/'));
    assert.equal(blobGets.length, 2, `the config and the layer, each fetched once:\n${blobGets.join('\n')}`);
    await stack.cri.image.removeImage({ image: imageSpec(good.configDigest) });
  });
});
