// Pods and containers end to end: a real stack running real containers with
// runc and conmon, CNI networking, logs, ExecSync, and an executor restart.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { imageSpec } from '@berth/client';
import { isCategory } from '@berth/errors';
import { buildImage, pushImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, startRegistry, startStack, type RegistryHandle, type StackHandle } from '@berth/testing';

let stack: StackHandle;
let registry: RegistryHandle;
let imageName: string;
let imageId: string;
const logRoot = mkdtempSync('/var/tmp/berth-e2e-logs-');

before(async () => {
  registry = await startRegistry();
  const image = await buildImage({
    layers: [[...busyboxRootfs(), { type: 'dir', path: '/etc' }, { type: 'file', path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' }, { type: 'file', path: '/etc/group', content: 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' }]],
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin', 'FROM_IMAGE=yes', 'OVERRIDE=image'] },
  });
  await pushImage(registry.url, 'test/busybox', 'pods', image);
  imageName = `${registry.host}/test/busybox:pods`;
  stack = await startStack();
  imageId = (await stack.cri.image.pullImage({ image: imageSpec(imageName), auth: undefined, sandboxConfig: undefined })).imageRef;
});
after(async () => {
  // Whatever a failed test left running goes with the stack.
  const pods = await stack?.cri.runtime.listPodSandbox({ filter: undefined }).catch(() => ({ items: [] }));
  for (const p of pods?.items ?? []) await stack.cri.runtime.removePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
  await stack?.stop();
  await registry?.stop();
  rmSync(logRoot, { recursive: true, force: true });
});

const category = (c: Parameters<typeof isCategory>[1]) => (e: Error) => isCategory(e, c);

function podConfig(name: string, extra: Partial<criV1.PodSandboxConfig> = {}): criV1.PodSandboxConfig {
  return criV1.PodSandboxConfig.fromPartial({
    metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    logDirectory: join(logRoot, name),
    labels: { suite: 'pods', pod: name },
    dnsConfig: { servers: ['10.96.0.10'], searches: ['e2e.svc.cluster.local'], options: ['ndots:5'] },
    linux: { securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } },
    ...extra,
  });
}

function containerConfig(name: string, command: string[], extra: Partial<criV1.ContainerConfig> = {}): criV1.ContainerConfig {
  return criV1.ContainerConfig.fromPartial({ metadata: { name, attempt: 0 }, image: { image: imageName }, command, logPath: `${name}/0.log`, labels: { c: name }, ...extra });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const exited = (id: string) =>
  waitFor(`container ${id} to exit`, async () => {
    const s = (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status;
    return s?.state === criV1.ContainerState.CONTAINER_EXITED ? s : undefined;
  });

describe('a pod with containers', () => {
  let podId = '';
  let sleeper = '';
  const config = podConfig('web');

  test('RunPodSandbox gives a ready pod with an IP from the CNI network', async () => {
    podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    assert.match(podId, /^[a-f0-9]{64}$/);
    const { status, info } = await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: true });
    assert.equal(status?.state, criV1.PodSandboxState.SANDBOX_READY);
    assert.match(status?.network?.ip ?? '', /^10\.88\.\d+\.\d+$/);
    assert.deepEqual(status?.metadata, config.metadata);
    assert.deepEqual(status?.labels, config.labels);
    assert.ok(Number(JSON.parse(info['info'] ?? '{}').pid) > 0, 'verbose info names the pause pid');
    const listed = await stack.cri.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: { pod: 'web' } } });
    assert.deepEqual(listed.items.map((p) => p.id), [podId]);
    const none = await stack.cri.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: { pod: 'nope' } } });
    assert.equal(none.items.length, 0);
  });

  test('a container runs with the merged command, env and user, logs in the CRI format and reports its exit code', async () => {
    const create = await stack.cri.runtime.createContainer({
      podSandboxId: podId,
      config: containerConfig('once', ['/bin/sh', '-c', 'echo "out $FROM_IMAGE $OVERRIDE $(id -u):$(id -g):$(id -G)"; echo oops >&2; cat /etc/hostname; grep nameserver /etc/resolv.conf; exit 3'], {
        envs: [{ key: 'OVERRIDE', value: Buffer.from('cri') }],
        linux: { securityContext: { runAsUsername: 'app' } },
      } as Partial<criV1.ContainerConfig>),
      sandboxConfig: config,
    });
    const id = create.containerId;
    const created = (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status;
    assert.equal(created?.state, criV1.ContainerState.CONTAINER_CREATED);
    await stack.cri.runtime.startContainer({ containerId: id });
    const s = await exited(id);
    assert.equal(s.exitCode, 3);
    assert.equal(s.reason, 'Error');
    assert.ok(s.startedAt > 0n && s.finishedAt >= s.startedAt);
    assert.equal(s.imageRef, imageId);
    assert.equal(s.logPath, join(logRoot, 'web', 'once/0.log'));
    const log = await waitFor('the log', async () => {
      const text = existsSync(s.logPath) ? readFileSync(s.logPath, 'utf8') : '';
      return text.includes('nameserver') ? text : undefined;
    });
    const lines = log.trim().split('\n');
    assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\dT\S+ stdout F out yes cri 1000:1000:1000 2000$/);
    assert.ok(lines.some((l) => / stderr F oops$/.test(l)), log);
    assert.ok(lines.some((l) => / stdout F web$/.test(l)), 'the pod hostname');
    assert.ok(lines.some((l) => / stdout F nameserver 10\.96\.0\.10$/.test(l)), 'resolv.conf from DNSConfig');
    await stack.cri.runtime.removeContainer({ containerId: id });
    await assert.rejects(stack.cri.runtime.containerStatus({ containerId: id, verbose: false }), category('not-found'));
    await stack.cri.runtime.removeContainer({ containerId: id }); // idempotent
  });

  test('ExecSync runs in a running container: output, exit codes, the pod network, a timeout', async () => {
    sleeper = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('sleeper', ['/bin/sleep', '1000']), sandboxConfig: config })).containerId;
    await stack.cri.runtime.startContainer({ containerId: sleeper });
    const running = await stack.cri.runtime.listContainers({ filter: { id: '', state: { state: criV1.ContainerState.CONTAINER_RUNNING }, podSandboxId: podId, labelSelector: {} } });
    assert.deepEqual(running.containers.map((c) => c.id), [sleeper]);
    const echo = await stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['echo', 'hello'], timeout: 0n });
    assert.equal(Buffer.from(echo.stdout).toString(), 'hello\n');
    assert.equal(echo.exitCode, 0);
    const fail = await stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['sh', '-c', 'echo bad >&2; exit 7'], timeout: 0n });
    assert.equal(fail.exitCode, 7);
    assert.equal(Buffer.from(fail.stderr).toString(), 'bad\n');
    const pod = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status!;
    const addr = await stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['ip', '-4', 'addr', 'show', 'eth0'], timeout: 0n });
    assert.match(Buffer.from(addr.stdout).toString(), new RegExp(`inet ${pod.network!.ip.replaceAll('.', '\\.')}/`));
    const started = Date.now();
    await assert.rejects(stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['sleep', '30'], timeout: 1n }), category('deadline-exceeded'));
    assert.ok(Date.now() - started < 10_000);
  });

  test('the executor restarts without losing the pod or its containers', async () => {
    const before = stack.pid('executor');
    process.kill(before, 'SIGKILL');
    await waitFor('a new executor', async () => {
      try {
        return stack.pid('executor') !== before ? true : undefined;
      } catch {
        return undefined;
      }
    }, 20_000);
    const s = await waitFor('the container status after the restart', () => stack.cri.runtime.containerStatus({ containerId: sleeper, verbose: false }).then((r) => r.status, () => undefined), 20_000);
    assert.equal(s.state, criV1.ContainerState.CONTAINER_RUNNING);
    const pod = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status;
    assert.equal(pod?.state, criV1.PodSandboxState.SANDBOX_READY);
    const echo = await stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['echo', 'still here'], timeout: 0n });
    assert.equal(Buffer.from(echo.stdout).toString(), 'still here\n');
  });

  test('StopContainer sends the stop signal and reports the exit', async () => {
    await stack.cri.runtime.stopContainer({ containerId: sleeper, timeout: 5n });
    const s = await exited(sleeper);
    assert.equal(s.exitCode, 143, 'sleep dies of SIGTERM');
    assert.equal(s.reason, 'Error');
  });

  test('StopPodSandbox and RemovePodSandbox tear everything down, and say so again when asked twice', async () => {
    await stack.cri.runtime.stopPodSandbox({ podSandboxId: podId });
    const stopped = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status;
    assert.equal(stopped?.state, criV1.PodSandboxState.SANDBOX_NOTREADY);
    await stack.cri.runtime.stopPodSandbox({ podSandboxId: podId });
    await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    assert.equal((await stack.cri.runtime.listPodSandbox({ filter: undefined })).items.length, 0);
    assert.equal((await stack.cri.runtime.listContainers({ filter: undefined })).containers.length, 0);
    const mounts = readFileSync('/proc/mounts', 'utf8');
    const left = mounts.split('\n').filter((l) => l.includes(podId) || l.includes(sleeper));
    assert.deepEqual(left, [], 'no mount of the pod or its containers is left');
  });
});

describe('bad requests', () => {
  test('sysctls that are not namespaced or smuggle a second setting are refused', async () => {
    for (const sysctls of [{ 'kernel.hostname': 'x' }, { 'net.ipv4.ip_forward': '1\nkernel.panic=1' }, { 'kernel.shmmax': '1=2' }]) {
      const config = podConfig('sysctl', { linux: criV1.LinuxPodSandboxConfig.fromPartial({ sysctls }) });
      await assert.rejects(stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' }), category('invalid-argument'));
    }
    assert.equal((await stack.cri.runtime.listPodSandbox({ filter: undefined })).items.length, 0, 'nothing half-made');
  });

  test('an unknown runtime handler, a missing image and a missing mount source are refused, and nothing is left', async () => {
    await assert.rejects(stack.cri.runtime.runPodSandbox({ config: podConfig('handler'), runtimeHandler: 'no-such-handler' }), category('not-found'));
    const config = podConfig('bad');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('noimage', ['true'], { image: imageSpec('example.invalid/none:1') }), sandboxConfig: config }), category('not-found'));
      const badMount = containerConfig('nomount', ['true'], { mounts: [criV1.Mount.fromPartial({ containerPath: '/data', hostPath: '/nonexistent/berth-e2e' })] });
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: podId, config: badMount, sandboxConfig: config }), category('invalid-argument'));
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: 'f'.repeat(64), config: containerConfig('nopod', ['true']), sandboxConfig: config }), category('not-found'));
      assert.equal((await stack.cri.runtime.listContainers({ filter: undefined })).containers.length, 0, 'no container record');
      assert.ok(!readFileSync('/proc/mounts', 'utf8').includes('/executor/containers/'), 'no rootfs left mounted');
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });
});
