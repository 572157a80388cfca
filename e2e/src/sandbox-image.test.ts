// A pod sandbox image from a registry (instead of Berth's built-in one),
// pulled through the image service on the first RunPodSandbox, so registry
// mirrors apply: the image is named after a registry that does not resolve.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage, pushImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, startRegistry, startStack, type RegistryHandle, type StackHandle } from '@berth/testing';

let stack: StackHandle;
let registry: RegistryHandle;
let hostsDir: string;

before(async () => {
  registry = await startRegistry();
  const pause = await buildImage({ layers: [busyboxRootfs()], config: { Entrypoint: ['/bin/sleep'], Cmd: ['100000'] } });
  await pushImage(registry.url, 'mirror/pause', '3.10', pause);
  hostsDir = mkdtempSync('/tmp/berth-hosts-');
  mkdirSync(join(hostsDir, 'sandbox.example.test'));
  writeFileSync(join(hostsDir, 'sandbox.example.test', 'hosts.toml'), `server = "https://sandbox.example.test"\n\n[host."http://${registry.host}"]\ncapabilities = ["pull", "resolve"]\n`);
  stack = await startStack({ extraConfig: `[image]\nhostsDir = "${hostsDir}"\n`, env: { BERTH_SANDBOX_IMAGE: 'sandbox.example.test/mirror/pause:3.10' } });
});
after(async () => {
  await stack?.stop();
  await registry?.stop();
  rmSync(hostsDir, { recursive: true, force: true });
});

test('RunPodSandbox pulls the configured sandbox image through its mirror and runs it', async () => {
  const before = await stack.cri.image.listImages({ filter: undefined });
  assert.ok(!before.images.some((i) => i.repoTags.includes('sandbox.example.test/mirror/pause:3.10')));
  const config = criV1.PodSandboxConfig.fromPartial({ metadata: { name: 'mirrored', namespace: 'e2e', uid: 'uid-mirrored' }, hostname: 'mirrored' });
  const { podSandboxId } = await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' });
  const status = await stack.cri.runtime.podSandboxStatus({ podSandboxId, verbose: true });
  assert.equal(status.status?.state, criV1.PodSandboxState.SANDBOX_READY);
  const pid = (JSON.parse(status.info['info'] ?? '{}') as { pid: number }).pid;
  assert.ok(pid > 0);
  const after = await stack.cri.image.listImages({ filter: undefined });
  assert.ok(after.images.some((i) => i.repoTags.includes('sandbox.example.test/mirror/pause:3.10')), 'the sandbox image is listed under its upstream name');
  await stack.cri.runtime.removePodSandbox({ podSandboxId });
});
