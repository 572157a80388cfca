// Pods and containers end to end: a real stack running real containers with
// runc and conmon, CNI networking, logs, ExecSync, and an executor restart.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { imageSpec } from '@berth/client';
import { isCategory } from '@berth/errors';
import { buildImage, pushImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, removeAllPods, startRegistry, startStack, waitFor, type RegistryHandle, type StackHandle } from '@berth/testing';

const execFileAsync = promisify(execFile);
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
  if (stack !== undefined) await removeAllPods(stack);
  await stack?.stop();
  await registry?.stop();
  rmSync(logRoot, { recursive: true, force: true });
});

const category = (c: Parameters<typeof isCategory>[1]) => (e: Error) => isCategory(e, c);
const text = (b: Uint8Array) => Buffer.from(b).toString();

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

/** kill -9 of the executor; `meanwhile` runs before berthd's new one is awaited. */
async function killExecutor(meanwhile: () => Promise<unknown>): Promise<void> {
  const before = stack.pid('executor');
  process.kill(before, 'SIGKILL');
  await meanwhile();
  await waitFor('a new executor', async () => {
    try {
      return stack.pid('executor') !== before ? true : undefined;
    } catch {
      return undefined;
    }
  }, 20_000);
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
      config: containerConfig('once', ['/bin/sh', '-c', 'echo "out $FROM_IMAGE $OVERRIDE $(id -u):$(id -g):$(id -G)"; echo oops >&2; cat /etc/hostname; echo "uts $(hostname)"; grep nameserver /etc/resolv.conf; exit 3'], {
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
    assert.ok(lines.some((l) => / stdout F web$/.test(l)), 'the pod hostname in /etc/hostname');
    assert.ok(lines.some((l) => / stdout F uts web$/.test(l)), "the pod hostname in the pod's UTS namespace");
    assert.ok(lines.some((l) => / stdout F nameserver 10\.96\.0\.10$/.test(l)), 'resolv.conf from DNSConfig');
    // Exited, not yet removed: its rootfs is let go at once; its status stays.
    await waitFor('the exited rootfs unmounted', async () => (readFileSync('/proc/mounts', 'utf8').includes(id) ? undefined : true));
    assert.equal((await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status?.exitCode, 3);
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
    const quitter = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('quitter', ['/bin/sh', '-c', 'sleep 1; exit 42']), sandboxConfig: config })).containerId;
    await stack.cri.runtime.startContainer({ containerId: quitter });
    await killExecutor(() => sleep(1500)); // the quitter exits while no executor runs
    const s = await waitFor('the container status after the restart', () => stack.cri.runtime.containerStatus({ containerId: sleeper, verbose: false }).then((r) => r.status, () => undefined), 20_000);
    assert.equal(s.state, criV1.ContainerState.CONTAINER_RUNNING);
    const pod = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status;
    assert.equal(pod?.state, criV1.PodSandboxState.SANDBOX_READY);
    const echo = await stack.cri.runtime.execSync({ containerId: sleeper, cmd: ['echo', 'still here'], timeout: 0n });
    assert.equal(Buffer.from(echo.stdout).toString(), 'still here\n');
    const q = await exited(quitter);
    assert.equal(q.exitCode, 42, 'an exit during the outage is reported truly');
    await waitFor('the rootfs of the exit during the outage unmounted', async () => (readFileSync('/proc/mounts', 'utf8').includes(quitter) ? undefined : true));
    const running = await stack.cri.runtime.listContainers({ filter: { id: '', state: undefined, podSandboxId: podId, labelSelector: {} } });
    assert.equal(running.containers.length, 2, 'nothing duplicated');
    await stack.cri.runtime.removeContainer({ containerId: quitter });
  });

  test('RemoveContainer answers before its cleanup, which finishes behind it, across a kill -9 of the executor too', async () => {
    const brief = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('brief', ['/bin/sleep', '1000']), sandboxConfig: config })).containerId;
    await stack.cri.runtime.startContainer({ containerId: brief });
    await stack.cri.runtime.removeContainer({ containerId: brief }); // running: killed, then removed
    let pending = false;
    await killExecutor(async () => {
      pending = existsSync(join(stack.dir, 'state/executor/container-removals', `${brief}.json`));
    });
    await assert.rejects(waitFor('the executor answering', () => stack.cri.runtime.containerStatus({ containerId: brief, verbose: false }).then(() => 'found', (e: Error) => (isCategory(e, 'not-found') ? Promise.reject(e) : undefined)), 20_000), category('not-found'));
    const listed = await stack.cri.runtime.listContainers({ filter: undefined });
    assert.ok(!listed.containers.some((c) => c.id === brief), 'not listed');
    // The name is free at once: the same name and attempt make a new container.
    const again = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('brief', ['/bin/true']), sandboxConfig: config })).containerId;
    assert.notEqual(again, brief);
    await stack.cri.runtime.removeContainer({ containerId: again });
    for (const id of [brief, again]) {
      await waitFor(`the cleanup of ${id.slice(0, 12)} (cut short by the kill: ${pending})`, async () => {
        const left = readFileSync('/proc/mounts', 'utf8').includes(id) || existsSync(join(stack.dir, 'state/executor/containers', id)) || existsSync(join(stack.dir, 'state/executor/container-removals', `${id}.json`));
        return left ? undefined : true;
      }, 20_000);
    }
  });

  test('StopContainer sends the stop signal and reports the exit', async () => {
    await stack.cri.runtime.stopContainer({ containerId: sleeper, timeout: 5n });
    const s = await exited(sleeper);
    assert.equal(s.exitCode, 143, 'sleep dies of SIGTERM');
    assert.equal(s.reason, 'Error');
  });

  test('a kill -9 of the CRI frontend loses nothing either', async () => {
    const before = stack.pid('cri');
    process.kill(before, 'SIGKILL');
    const s = await waitFor('the CRI frontend back', () => stack.cri.runtime.containerStatus({ containerId: sleeper, verbose: false }).then((r) => r.status, () => undefined), 20_000);
    assert.notEqual(stack.pid('cri'), before);
    assert.equal(s.state, criV1.ContainerState.CONTAINER_EXITED, 'the container stopped in the test before');
    assert.equal(s.exitCode, 143);
    const pods = (await stack.cri.runtime.listPodSandbox({ filter: undefined })).items.filter((p) => p.id === podId);
    assert.equal(pods[0]?.state, criV1.PodSandboxState.SANDBOX_READY);
  });

  test('StopPodSandbox and RemovePodSandbox tear everything down, and say so again when asked twice', async () => {
    const ip = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status!.network!.ip;
    assert.ok(existsSync(`/var/lib/cni/networks/berth/${ip}`), 'host-local holds the pod IP');
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
    assert.ok(!existsSync(`/var/lib/cni/networks/berth/${ip}`), 'the pod IP is released (CNI DEL)');
    for (const id of [podId, sleeper]) {
      for (const controller of ['memory', 'pids', 'cpu,cpuacct', 'unified']) {
        const dir = `/sys/fs/cgroup/${controller}/berth/berth-${id}`;
        assert.ok(!existsSync(dir), `no cgroup left: ${dir}`);
      }
    }
  });
});

describe('networking, limits and confinement', () => {
  let a = '';
  let b = '';
  const aConfig = podConfig('net-a', { portMappings: [criV1.PortMapping.fromPartial({ protocol: criV1.Protocol.TCP, containerPort: 8080, hostPort: 38080 })] });
  const bConfig = podConfig('net-b');
  const events: criV1.ContainerEventResponse[] = [];
  const stopEvents = new AbortController();
  let collecting: Promise<void>;

  before(async () => {
    collecting = (async () => {
      try {
        for await (const e of stack.cri.runtime.getContainerEvents({}, { signal: stopEvents.signal, timeoutMs: 10 * 60 * 1000 })) events.push(e);
      } catch {
        // cancelled at the end
      }
    })();
    a = (await stack.cri.runtime.runPodSandbox({ config: aConfig, runtimeHandler: '' })).podSandboxId;
    b = (await stack.cri.runtime.runPodSandbox({ config: bConfig, runtimeHandler: '' })).podSandboxId;
  });
  after(async () => {
    for (const id of [a, b]) if (id) await stack.cri.runtime.removePodSandbox({ podSandboxId: id });
  });

  async function run(podId: string, config: criV1.PodSandboxConfig, name: string, command: string[], extra: Partial<criV1.ContainerConfig> = {}): Promise<string> {
    const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig(name, command, extra), sandboxConfig: config })).containerId;
    await stack.cri.runtime.startContainer({ containerId: id });
    return id;
  }


  test('two pods reach each other by IP, and a host port answers', async () => {
    const rootfsOf = async (id: string) => JSON.parse((await stack.cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: true })).info['info'] ?? '{}').pauseRootfs as string;
    const [ra, rb] = [await rootfsOf(a), await rootfsOf(b)];
    assert.equal(ra, rb, "both pauses run from the sandbox image's one shared root filesystem");
    assert.ok(readFileSync('/proc/mounts', 'utf8').includes(ra), ra);
    const web = await run(a, aConfig, 'httpd', ['/bin/sh', '-c', 'mkdir -p /tmp/www && echo "hello from pod a" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']);
    const client = await run(b, bConfig, 'client', ['/bin/sleep', '1000']);
    // Right after a change the frontend answers from the change's event; it must say what the executor says.
    const kept = (await stack.cri.runtime.containerStatus({ containerId: client, verbose: false })).status;
    const asked = (await stack.cri.runtime.containerStatus({ containerId: client, verbose: true })).status;
    assert.deepEqual(kept, asked);
    assert.equal(kept?.state, criV1.ContainerState.CONTAINER_RUNNING);
    const item = (await stack.cri.runtime.listContainers({ filter: { id: client, podSandboxId: '', labelSelector: {}, state: undefined } })).containers[0];
    assert.deepEqual(item, { id: client, podSandboxId: b, metadata: asked?.metadata, image: asked?.image, imageRef: asked?.imageRef, state: asked?.state, createdAt: asked?.createdAt, labels: asked?.labels, annotations: asked?.annotations, imageId: asked?.imageId });
    const keptPod = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: b, verbose: false })).status;
    assert.deepEqual(keptPod, (await stack.cri.runtime.podSandboxStatus({ podSandboxId: b, verbose: true })).status);
    const aIp = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: a, verbose: false })).status!.network!.ip;
    const ping = await stack.cri.runtime.execSync({ containerId: client, cmd: ['ping', '-c', '1', '-W', '5', aIp], timeout: 10n });
    assert.equal(ping.exitCode, 0, text(ping.stdout) + text(ping.stderr));
    const page = await waitFor('httpd in pod a', async () => {
      const r = await stack.cri.runtime.execSync({ containerId: client, cmd: ['wget', '-q', '-O', '-', `http://${aIp}:8080/`], timeout: 10n });
      return r.exitCode === 0 ? text(r.stdout) : undefined;
    });
    assert.equal(page, 'hello from pod a\n');
    const hostIp = Object.entries(networkInterfaces())
      .filter(([name]) => !name.startsWith('berth') && !name.startsWith('veth') && !name.startsWith('cni'))
      .flatMap(([, addrs]) => addrs ?? [])
      .find((i) => i.family === 'IPv4' && !i.internal)?.address;
    assert.ok(hostIp, 'the host has an IPv4 address');
    const viaHostPort = await (await fetch(`http://${hostIp}:38080/`)).text();
    assert.equal(viaHostPort, 'hello from pod a\n');
    for (const id of [web, client]) await stack.cri.runtime.removeContainer({ containerId: id });
  });

  test('a container over its memory limit is OOM-killed and reported so', async () => {
    const id = await run(a, aConfig, 'hog', ['/bin/sh', '-c', 'head -c 400m /dev/zero | tail'], {
      linux: criV1.LinuxContainerConfig.fromPartial({ resources: { memoryLimitInBytes: BigInt(32 * 1024 * 1024) } }),
    });
    const s = await exited(id);
    assert.equal(s.reason, 'OOMKilled', `exit ${s.exitCode}`);
    assert.notEqual(s.exitCode, 0);
    await stack.cri.runtime.removeContainer({ containerId: id });
  });

  test('a stop whose signal is ignored escalates to SIGKILL after the timeout', async () => {
    const id = await run(a, aConfig, 'stubborn', ['/bin/sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done']);
    await sleep(300);
    const t = Date.now();
    await stack.cri.runtime.stopContainer({ containerId: id, timeout: 1n });
    const took = Date.now() - t;
    const s = await exited(id);
    assert.equal(s.exitCode, 137);
    assert.ok(took >= 900 && took < 8000, `stop took ${took} ms`);
    await stack.cri.runtime.removeContainer({ containerId: id });
  });

  test('a read-only rootfs refuses writes; seccomp profiles block what they name', async () => {
    const ro = await run(a, aConfig, 'readonly', ['/bin/sleep', '1000'], { linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { readonlyRootfs: true } }) });
    const write = await stack.cri.runtime.execSync({ containerId: ro, cmd: ['touch', '/new-file'], timeout: 10n });
    assert.notEqual(write.exitCode, 0);
    assert.match(text(write.stderr), /Read-only file system/);
    const dir = mkdtempSync('/var/tmp/berth-e2e-seccomp-');
    const profile = join(dir, 'no-mkdir.json');
    writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
    const local = await run(a, aConfig, 'seccomp-local', ['/bin/sleep', '1000'], {
      linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { seccomp: { profileType: criV1.SecurityProfile_ProfileType.Localhost, localhostRef: profile } } }),
    });
    const mk = await stack.cri.runtime.execSync({ containerId: local, cmd: ['mkdir', '/tmp/d'], timeout: 10n });
    assert.notEqual(mk.exitCode, 0);
    assert.match(text(mk.stderr), /Operation not permitted/);
    const dflt = await run(a, aConfig, 'seccomp-default', ['/bin/sleep', '1000'], {
      linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { seccomp: { profileType: criV1.SecurityProfile_ProfileType.RuntimeDefault }, capabilities: { addCapabilities: ['SYS_ADMIN'] } } }),
    });
    const us = await stack.cri.runtime.execSync({ containerId: dflt, cmd: ['unshare', '-n', 'true'], timeout: 10n });
    assert.notEqual(us.exitCode, 0, 'RuntimeDefault blocks unshare even with CAP_SYS_ADMIN');
    const unconfined = await run(a, aConfig, 'seccomp-unconfined', ['/bin/sleep', '1000'], {
      linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { seccomp: { profileType: criV1.SecurityProfile_ProfileType.Unconfined }, capabilities: { addCapabilities: ['SYS_ADMIN'] } } }),
    });
    const free = await stack.cri.runtime.execSync({ containerId: unconfined, cmd: ['unshare', '-n', 'true'], timeout: 10n });
    assert.equal(free.exitCode, 0, text(free.stderr));
    for (const id of [ro, local, dflt, unconfined]) await stack.cri.runtime.removeContainer({ containerId: id });
    rmSync(dir, { recursive: true, force: true });
  });

  test('stats: CPU, memory, writable layer and pod network; resources updated live; logs reopened after rotation', async () => {
    const id = await run(a, aConfig, 'busy', ['/bin/sh', '-c', 'dd if=/dev/zero of=/grow bs=1M count=3 2>/dev/null; i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.05; done']);
    const client = await run(b, bConfig, 'pinger', ['/bin/sleep', '1000']);
    const aIp = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: a, verbose: false })).status!.network!.ip;
    await stack.cri.runtime.execSync({ containerId: client, cmd: ['ping', '-c', '3', '-i', '0.2', aIp], timeout: 10n });
    await sleep(500);
    const first = (await stack.cri.runtime.containerStats({ containerId: id })).stats!;
    await sleep(500);
    const second = (await stack.cri.runtime.containerStats({ containerId: id })).stats!;
    assert.equal(second.attributes?.id, id);
    assert.ok((second.cpu?.usageCoreNanoSeconds?.value ?? 0n) > (first.cpu?.usageCoreNanoSeconds?.value ?? 0n), 'CPU time grows');
    assert.ok(second.cpu?.usageNanoCores !== undefined, 'a rate from two samples');
    assert.ok((second.memory?.workingSetBytes?.value ?? 0n) > 0n);
    assert.ok((second.writableLayer?.usedBytes?.value ?? 0n) >= 3n * 1024n * 1024n, `writable layer ${second.writableLayer?.usedBytes?.value}`);
    const listed = await stack.cri.runtime.listContainerStats({ filter: { id: '', podSandboxId: a, labelSelector: {} } });
    assert.ok(listed.stats.some((s) => s.attributes?.id === id));
    const pod = (await stack.cri.runtime.podSandboxStats({ podSandboxId: a })).stats!;
    assert.ok((pod.linux?.network?.defaultInterface?.rxBytes?.value ?? 0n) > 0n, 'pod network counters');
    assert.equal(pod.linux?.network?.defaultInterface?.name, 'eth0');
    assert.ok((pod.linux?.process?.processCount?.value ?? 0n) >= 2n);
    assert.ok(pod.linux?.containers.some((c) => c.attributes?.id === id));
    const allPods = await stack.cri.runtime.listPodSandboxStats({ filter: undefined });
    assert.ok(allPods.stats.some((p) => p.attributes?.id === a) && allPods.stats.some((p) => p.attributes?.id === b));

    await stack.cri.runtime.updateContainerResources({ containerId: id, linux: criV1.LinuxContainerResources.fromPartial({ memoryLimitInBytes: BigInt(64 * 1024 * 1024) }), windows: undefined, annotations: {} });
    const limit = await stack.cri.runtime.execSync({ containerId: id, cmd: ['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'], timeout: 10n });
    assert.equal(text(limit.stdout).trim(), String(64 * 1024 * 1024));

    const status = (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status!;
    renameSync(status.logPath, `${status.logPath}.1`);
    await stack.cri.runtime.reopenContainerLog({ containerId: id });
    // The new file is there when the call returns, as critest's reopen spec checks (CRI-O waits for conmon's new file too).
    assert.ok(existsSync(status.logPath), 'ReopenContainerLog returns once the new log file exists');
    const reopened = await waitFor('lines in the new log', async () => (existsSync(status.logPath) && / stdout F line \d+/.test(readFileSync(status.logPath, 'utf8')) ? true : undefined));
    assert.ok(reopened);
    for (const c of [id, client]) await stack.cri.runtime.removeContainer({ containerId: c });
  });

  test('GetContainerEvents streamed the lifecycle of what ran', async () => {
    const kinds = (id: string) => events.filter((e) => e.containerId === id).map((e) => e.containerEventType);
    const E = criV1.ContainerEventType;
    assert.deepEqual(kinds(a).slice(0, 2), [E.CONTAINER_CREATED_EVENT, E.CONTAINER_STARTED_EVENT]);
    const hog = events.find((e) => e.containersStatuses[0]?.metadata?.name === 'hog')?.containerId;
    assert.ok(hog, 'events name their container');
    await waitFor('the deleted event', async () => (kinds(hog).includes(E.CONTAINER_DELETED_EVENT) ? true : undefined));
    assert.deepEqual(kinds(hog), [E.CONTAINER_CREATED_EVENT, E.CONTAINER_STARTED_EVENT, E.CONTAINER_STOPPED_EVENT, E.CONTAINER_DELETED_EVENT]);
    const stopped = events.find((e) => e.containerId === hog && e.containerEventType === E.CONTAINER_STOPPED_EVENT);
    assert.equal(stopped?.containersStatuses[0]?.reason, 'OOMKilled');
    assert.equal(stopped?.podSandboxStatus?.id, a);
    stopEvents.abort();
    await collecting;
  });
});

describe('what the kubelet polls', () => {
  test('an exit, and a pod whose pause died, show in List and Status soon after, however often they are asked', async () => {
    const config = podConfig('poll');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('brief', ['sh', '-c', 'sleep 1; exit 7']), sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      // Asked ten times a second, as a busy kubelet might: answers kept in memory must not hide the exit.
      const seen = await waitFor('the exit in ContainerStatus and ListContainers', async () => {
        const [status, list] = await Promise.all([stack.cri.runtime.containerStatus({ containerId: id, verbose: false }), stack.cri.runtime.listContainers({ filter: { id, podSandboxId: '', state: undefined, labelSelector: {} } })]);
        await sleep(100);
        return status.status?.state === criV1.ContainerState.CONTAINER_EXITED && list.containers[0]?.state === criV1.ContainerState.CONTAINER_EXITED ? { at: Date.now(), status: status.status } : undefined;
      });
      assert.equal(seen.status.exitCode, 7);
      const lag = seen.at - Number(seen.status.finishedAt / 1_000_000n);
      assert.ok(lag < 1500, `the exit showed ${lag} ms after it happened`);

      const pause = Number(JSON.parse((await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: true })).info['info'] ?? '{}').pid);
      assert.ok(pause > 0);
      await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false });
      process.kill(pause, 'SIGKILL');
      await waitFor(
        'the pod to show not ready',
        async () => {
          const [status, list] = await Promise.all([stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false }), stack.cri.runtime.listPodSandbox({ filter: { id: podId, state: undefined, labelSelector: {} } })]);
          await sleep(100);
          return status.status?.state === criV1.PodSandboxState.SANDBOX_NOTREADY && list.items[0]?.state === criV1.PodSandboxState.SANDBOX_NOTREADY ? true : undefined;
        },
        8000,
      );
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });
});

describe('namespaces and volumes', () => {
  test('PID namespace per container, node or target; host network; an image volume', async () => {
    const config = podConfig('ns');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    const host = podConfig('hostnet', { hostname: '', linux: criV1.LinuxPodSandboxConfig.fromPartial({ securityContext: { namespaceOptions: { network: criV1.NamespaceMode.NODE, pid: criV1.NamespaceMode.POD, ipc: criV1.NamespaceMode.POD } } }) });
    const hostPod = (await stack.cri.runtime.runPodSandbox({ config: host, runtimeHandler: '' })).podSandboxId;
    const start = async (pod: string, podCfg: criV1.PodSandboxConfig, name: string, pid: criV1.NamespaceMode, targetId = '', extra: Partial<criV1.ContainerConfig> = {}) => {
      const cfg = containerConfig(name, ['/bin/sleep', '1000'], {
        linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { namespaceOptions: { network: 0, pid, ipc: 0, targetId } } }),
        ...extra,
      });
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: pod, config: cfg, sandboxConfig: podCfg })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      return id;
    };
    const pid1 = async (id: string) => text((await stack.cri.runtime.execSync({ containerId: id, cmd: ['cat', '/proc/1/cmdline'], timeout: 10n })).stdout).replaceAll('\0', ' ').trim();
    try {
      const inPod = await start(podId, config, 'pod-pid', criV1.NamespaceMode.POD);
      assert.match(await pid1(inPod), /pause/, 'the pod PID namespace starts with the pause process');
      const own = await start(podId, config, 'own-pid', criV1.NamespaceMode.CONTAINER);
      assert.equal(await pid1(own), '/bin/sleep 1000', 'its own PID namespace starts with its command');
      const target = await start(podId, config, 'target-pid', criV1.NamespaceMode.TARGET, own);
      assert.equal(await pid1(target), '/bin/sleep 1000', "the target's PID namespace");
      const node = await start(podId, config, 'node-pid', criV1.NamespaceMode.NODE);
      assert.equal(await pid1(node), readFileSync('/proc/1/cmdline', 'utf8').replaceAll('\0', ' ').trim(), "the host's PID namespace");

      const hostStatus = (await stack.cri.runtime.podSandboxStatus({ podSandboxId: hostPod, verbose: false })).status!;
      assert.equal(hostStatus.network?.ip, '', 'no pod IP on the host network');
      const onHost = await start(hostPod, host, 'on-host', criV1.NamespaceMode.POD);
      const links = text((await stack.cri.runtime.execSync({ containerId: onHost, cmd: ['ip', '-o', 'link'], timeout: 10n })).stdout);
      assert.match(links, /berth0/, "the host's interfaces");

      const volume = await start(podId, config, 'volume', criV1.NamespaceMode.POD, '', {
        mounts: [criV1.Mount.fromPartial({ containerPath: '/vol', image: { image: imageName }, imageSubPath: 'etc' })],
      });
      const ls = await stack.cri.runtime.execSync({ containerId: volume, cmd: ['cat', '/vol/group'], timeout: 10n });
      assert.match(text(ls.stdout), /^extra:x:2000:app$/m, "the image's /etc, mounted from the image");
      const write = await stack.cri.runtime.execSync({ containerId: volume, cmd: ['touch', '/vol/new'], timeout: 10n });
      assert.notEqual(write.exitCode, 0, 'an image volume is read-only');
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
      await stack.cri.runtime.removePodSandbox({ podSandboxId: hostPod });
    }
    assert.deepEqual(readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes('/volumes/')), [], 'image volumes are unmounted with their container');
  });
});

describe('retries', () => {
  test('RunPodSandbox and CreateContainer asked again (the kubelet after its deadline) get the same pod and container', async () => {
    const config = podConfig('retry');
    const [first, second] = await Promise.all([stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' }), stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })]);
    assert.equal(first.podSandboxId, second.podSandboxId, 'a concurrent retry joins the call in progress');
    const third = await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' });
    assert.equal(third.podSandboxId, first.podSandboxId, 'a later retry finds the pod');
    const request = { podSandboxId: first.podSandboxId, config: containerConfig('retried', ['/bin/sleep', '1000']), sandboxConfig: config };
    const [c1, c2] = await Promise.all([stack.cri.runtime.createContainer(request), stack.cri.runtime.createContainer(request)]);
    assert.equal(c1.containerId, c2.containerId);
    assert.equal((await stack.cri.runtime.createContainer(request)).containerId, c1.containerId);
    assert.equal((await stack.cri.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: { pod: 'retry' } } })).items.length, 1);
    assert.equal((await stack.cri.runtime.listContainers({ filter: { id: '', state: undefined, podSandboxId: first.podSandboxId, labelSelector: {} } })).containers.length, 1);
    await stack.cri.runtime.removePodSandbox({ podSandboxId: first.podSandboxId });
  });
});

describe('ids as crictl shows them (12 characters)', () => {
  const C = criV1.ContainerState;
  const state = async (id: string) => (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status?.state;

  test('every pod and container call takes a unique prefix, and StopPodSandbox and RemovePodSandbox by one really stop and remove the pod (containerd resolves a unique ID prefix in every call)', async () => {
    const config = podConfig('short');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    const pod = podId.slice(0, 12);
    assert.equal((await stack.cri.runtime.podSandboxStatus({ podSandboxId: pod, verbose: false })).status?.id, podId);
    assert.equal((await stack.cri.runtime.podSandboxStatus({ podSandboxId: pod, verbose: true })).status?.id, podId);
    assert.deepEqual((await stack.cri.runtime.listPodSandbox({ filter: { id: pod, state: undefined, labelSelector: {} } })).items.map((p) => p.id), [podId], 'a list filter takes a prefix too');
    const id = (await stack.cri.runtime.createContainer({ podSandboxId: pod, config: containerConfig('sleeper', ['sleep', '600']), sandboxConfig: config })).containerId;
    const ctr = id.slice(0, 12);
    await stack.cri.runtime.startContainer({ containerId: ctr });
    const status = (await stack.cri.runtime.containerStatus({ containerId: ctr, verbose: false })).status;
    assert.equal(status?.id, id);
    assert.equal(status?.state, C.CONTAINER_RUNNING, 'started by its prefix');
    assert.equal((await stack.cri.runtime.containerStatus({ containerId: ctr, verbose: true })).status?.id, id);
    const filter = { id: '', podSandboxId: '', state: undefined, labelSelector: {} };
    assert.deepEqual((await stack.cri.runtime.listContainers({ filter: { ...filter, id: ctr } })).containers.map((c) => c.id), [id]);
    assert.deepEqual((await stack.cri.runtime.listContainers({ filter: { ...filter, podSandboxId: pod } })).containers.map((c) => c.id), [id]);
    assert.equal(text((await stack.cri.runtime.execSync({ containerId: ctr, cmd: ['echo', 'short'], timeout: 10n })).stdout), 'short\n');
    assert.equal((await stack.cri.runtime.containerStats({ containerId: ctr })).stats?.attributes?.id, id);
    assert.deepEqual((await stack.cri.runtime.listContainerStats({ filter: { id: ctr, podSandboxId: '', labelSelector: {} } })).stats.map((s) => s.attributes?.id), [id]);
    assert.equal((await stack.cri.runtime.podSandboxStats({ podSandboxId: pod })).stats?.attributes?.id, podId);
    await stack.cri.runtime.updateContainerResources({ containerId: ctr, linux: criV1.LinuxContainerResources.fromPartial({ memoryLimitInBytes: BigInt(96 * 1024 * 1024) }), windows: undefined, annotations: {} });
    assert.equal(text((await stack.cri.runtime.execSync({ containerId: id, cmd: ['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'], timeout: 10n })).stdout).trim(), String(96 * 1024 * 1024), 'the update reached the container');
    await stack.cri.runtime.reopenContainerLog({ containerId: ctr });
    assert.match((await stack.cri.runtime.exec(criV1.ExecRequest.fromPartial({ containerId: ctr, cmd: ['true'], stdout: true }))).url, /\/exec\//);
    assert.match((await stack.cri.runtime.attach(criV1.AttachRequest.fromPartial({ containerId: ctr, stdout: true }))).url, /\/attach\//);
    assert.match((await stack.cri.runtime.portForward({ podSandboxId: pod, port: [80] })).url, /\/portforward\//);
    await stack.cri.runtime.stopContainer({ containerId: ctr, timeout: 0n });
    assert.equal(await state(id), C.CONTAINER_EXITED, 'stopped by its prefix');
    await stack.cri.runtime.removeContainer({ containerId: ctr });
    assert.ok(!(await stack.cri.runtime.listContainers({ filter: undefined })).containers.some((c) => c.id === id), 'removed by its prefix');
    // The pod by its prefix: its containers stop with it, then it goes.
    const other = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('other', ['sleep', '600']), sandboxConfig: config })).containerId;
    await stack.cri.runtime.startContainer({ containerId: other });
    await stack.cri.runtime.stopPodSandbox({ podSandboxId: pod });
    assert.equal((await stack.cri.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false })).status?.state, criV1.PodSandboxState.SANDBOX_NOTREADY, 'stopped, not just answered');
    assert.equal(await state(other), C.CONTAINER_EXITED);
    await stack.cri.runtime.removePodSandbox({ podSandboxId: pod });
    assert.ok(!(await stack.cri.runtime.listPodSandbox({ filter: undefined })).items.some((p) => p.id === podId), 'removed, not just answered');
    assert.ok(!(await stack.cri.runtime.listContainers({ filter: undefined })).containers.some((c) => c.id === other));
    assert.deepEqual(readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(podId) || l.includes(other)), [], 'nothing of the pod is mounted');
    // A prefix that names nothing is not found, never a success for work not done; a full id of nothing (the kubelet's retry)
    // and critest's made-up UUID are the idempotent success containerd answers.
    for (const call of [() => stack.cri.runtime.stopPodSandbox({ podSandboxId: pod }), () => stack.cri.runtime.removePodSandbox({ podSandboxId: pod }), () => stack.cri.runtime.stopContainer({ containerId: ctr, timeout: 0n }), () => stack.cri.runtime.removeContainer({ containerId: ctr }), () => stack.cri.runtime.podSandboxStatus({ podSandboxId: pod, verbose: false })]) {
      await assert.rejects(call(), category('not-found'));
    }
    for (const gone of [podId, '3b241101-e2bb-4255-8caf-4136c2a0f8b3']) {
      await stack.cri.runtime.stopPodSandbox({ podSandboxId: gone });
      await stack.cri.runtime.removePodSandbox({ podSandboxId: gone });
    }
    for (const gone of [id, '3b241101-e2bb-4255-8caf-4136c2a0f8b3']) {
      await stack.cri.runtime.stopContainer({ containerId: gone, timeout: 0n });
      await stack.cri.runtime.removeContainer({ containerId: gone });
    }
  });

  test('a prefix of two pods is refused with FAILED_PRECONDITION and changes nothing (containerd refuses an ambiguous prefix, with UNKNOWN); a list filter with it lists nothing (containerd)', async () => {
    // Pods until two ids share their first character: 16 hex digits, so at most 17.
    const ids: string[] = [];
    let shared: string | undefined;
    for (let n = 0; shared === undefined; n++) {
      const id = (await stack.cri.runtime.runPodSandbox({ config: podConfig(`twin-${n}`, { linux: { securityContext: { namespaceOptions: { network: 2, pid: 0, ipc: 0 } } } } as Partial<criV1.PodSandboxConfig>), runtimeHandler: '' })).podSandboxId;
      shared = ids.find((other) => other[0] === id[0])?.[0];
      ids.push(id);
    }
    try {
      const twins = ids.filter((id) => id[0] === shared);
      const ambiguous = category('failed-precondition');
      await assert.rejects(stack.cri.runtime.podSandboxStatus({ podSandboxId: shared, verbose: false }), ambiguous);
      await assert.rejects(stack.cri.runtime.stopPodSandbox({ podSandboxId: shared }), (e: Error) => ambiguous(e) && /ambiguous/.test(e.message));
      await assert.rejects(stack.cri.runtime.removePodSandbox({ podSandboxId: shared }), ambiguous);
      await assert.rejects(stack.cri.runtime.podSandboxStats({ podSandboxId: shared }), ambiguous);
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: shared, config: containerConfig('twin', ['true']), sandboxConfig: podConfig('twin-0') }), ambiguous);
      for (const id of twins) assert.equal((await stack.cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: false })).status?.state, criV1.PodSandboxState.SANDBOX_READY, 'neither was stopped');
      assert.deepEqual((await stack.cri.runtime.listPodSandbox({ filter: { id: shared, state: undefined, labelSelector: {} } })).items, []);
    } finally {
      for (const id of ids) await stack.cri.runtime.removePodSandbox({ podSandboxId: id });
    }
  });
});

describe('berthctl', () => {
  const berthctl = join(import.meta.dirname, '../../apps/berthctl/dist/main.js');
  const ctl = (...args: string[]) => execFileAsync(process.execPath, [berthctl, '-r', stack.socket, ...args]).then((r) => r.stdout);

  test('runp, create, start, ps, logs, exec --sync, stats, inspect, events, stop, rm, stopp, rmp', async () => {
    const dir = mkdtempSync('/var/tmp/berth-e2e-ctl-');
    const events = spawn(process.execPath, [berthctl, '-r', stack.socket, 'events'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let eventText = '';
    events.stdout.on('data', (d: Buffer) => (eventText += d.toString()));
    try {
      writeFileSync(join(dir, 'pod.json'), JSON.stringify({ metadata: { name: 'ctl', namespace: 'e2e', uid: 'uid-ctl' }, hostname: 'ctl', log_directory: join(logRoot, 'ctl') }));
      writeFileSync(join(dir, 'ctr.json'), JSON.stringify({ metadata: { name: 'talker' }, image: { image: imageName }, command: ['/bin/sh', '-c', 'echo first; echo second >&2; exec sleep 1000'], log_path: 'talker.log' }));
      await sleep(300); // the event stream is open
      const pod = (await ctl('runp', join(dir, 'pod.json'))).trim();
      assert.match(pod, /^[a-f0-9]{64}$/);
      assert.match(await ctl('pods'), new RegExp(`${pod.slice(0, 13)}\\s.*READY\\s+ctl\\s+e2e`));
      const ctr = (await ctl('create', pod, join(dir, 'ctr.json'), join(dir, 'pod.json'))).trim();
      await ctl('start', ctr);
      assert.match(await ctl('ps'), new RegExp(`${ctr.slice(0, 13)}\\s.*RUNNING\\s+talker`));
      const logs = await waitFor('logs', async () => {
        const r = await execFileAsync(process.execPath, [berthctl, '-r', stack.socket, 'logs', ctr]);
        return r.stdout.includes('first') && r.stderr.includes('second') ? r : undefined;
      });
      assert.equal(logs.stdout, 'first\n');
      assert.equal(await ctl('exec', '--sync', ctr, 'echo', 'via', 'exec'), 'via exec\n');
      await assert.rejects(ctl('exec', '--sync', ctr, 'sh', '-c', 'exit 4'), (e: { code: number }) => e.code === 4);
      assert.match(await ctl('stats'), new RegExp(`${ctr.slice(0, 13)}\\s+talker`));
      const inspected = JSON.parse(await ctl('inspect', ctr)) as { status: { metadata: { name: string } }; info: { info: { pid: number } } };
      assert.equal(inspected.status.metadata.name, 'talker');
      assert.ok(inspected.info.info.pid > 0);
      await ctl('stop', '--timeout-stop', '2', ctr);
      assert.doesNotMatch(await ctl('ps'), /talker/);
      assert.match(await ctl('ps', '-a'), /EXITED\s+talker/);
      await ctl('rm', ctr);
      await ctl('stopp', pod);
      await ctl('rmp', pod);
      assert.doesNotMatch(await ctl('pods'), /ctl/);
      const types = await waitFor('the events', async () => {
        const seen = eventText.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { containerId: string; type: string });
        const mine = seen.filter((e) => e.containerId === ctr).map((e) => e.type);
        return mine.includes('CONTAINER_DELETED_EVENT') ? mine : undefined;
      });
      assert.deepEqual(types, ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
    } finally {
      events.kill('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    }
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

  test('hostile: an image whose /etc links out of its rootfs, uid overflow, an ExecSync flood', async () => {
    const outside = '/tmp/berth-e2e-hostile-etc';
    rmSync(outside, { recursive: true, force: true });
    const hostile = await buildImage({ layers: [[...busyboxRootfs().filter((e) => e.path !== '/etc'), { type: 'symlink', path: '/etc', target: `/../../../..${outside}` }]], config: { Cmd: ['/bin/sh'] } });
    await pushImage(registry.url, 'test/hostile', 'etc', hostile);
    const hostileName = `${registry.host}/test/hostile:etc`;
    await stack.cri.image.pullImage({ image: imageSpec(hostileName), auth: undefined, sandboxConfig: undefined });
    const config = podConfig('hostile');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('etc', ['/bin/sleep', '1000'], { image: imageSpec(hostileName) }), sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      const hosts = await stack.cri.runtime.execSync({ containerId: id, cmd: ['cat', '/etc/hosts'], timeout: 10n });
      assert.match(Buffer.from(hosts.stdout).toString(), /\thostile$/m, 'the container sees the pod hosts file');
      assert.ok(!existsSync(outside), 'nothing was mounted or created on the host through the link');

      const flood = await stack.cri.runtime.execSync({ containerId: id, cmd: ['head', '-c', '40000000', '/dev/zero'], timeout: 30n });
      assert.equal(flood.stdout.length, 7 * 1024 * 1024, 'ExecSync output is capped');
      assert.equal(flood.exitCode, 0);

      const big = containerConfig('bigid', ['true'], { linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { runAsUser: { value: 2n ** 32n } } }) });
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: podId, config: big, sandboxConfig: config }), category('invalid-argument'));
      const negative = containerConfig('neggroup', ['true'], { linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { supplementalGroups: [-5n] } }) });
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: podId, config: negative, sandboxConfig: config }), category('invalid-argument'));
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });

  test('sandbox sysctls reach the pod, an interface one included, and lo is up; a pause that fails leaves no IP, mount or pin behind', async () => {
    // The pause and the network are made side by side, but a sysctl on eth0 waits for CNI to make eth0.
    const sysctls = { 'net.ipv4.ip_unprivileged_port_start': '81', 'net.ipv4.conf.eth0.arp_ignore': '2' };
    const config = podConfig('sysctls', { linux: criV1.LinuxPodSandboxConfig.fromPartial({ sysctls, securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } }) });
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('reader', ['/bin/sleep', '1000']), sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      const read = await stack.cri.runtime.execSync({ containerId: id, cmd: ['cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start', '/proc/sys/net/ipv4/conf/eth0/arp_ignore'], timeout: 10n });
      assert.equal(text(read.stdout), '81\n2\n', text(read.stderr));
      // lo is up (the namespace's pin brings it up; no loopback plugin process runs).
      const lo = await stack.cri.runtime.execSync({ containerId: id, cmd: ['ping', '-c', '1', '-W', '2', '127.0.0.1'], timeout: 10n });
      assert.equal(lo.exitCode, 0, text(lo.stdout) + text(lo.stderr));
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
    const ipsBefore = readdirSync('/var/lib/cni/networks/berth').filter((f) => /^\d/.test(f)).sort();
    // runc refuses a sysctl the kernel does not have: the pause fails while (or after) CNI ADD gave the pod an IP.
    for (const bad of [{ 'net.ipv4.no_such_setting': '1' }, { 'net.ipv4.conf.eth0.no_such_setting': '1' }]) {
      const failing = podConfig('sysctl-fails', { linux: criV1.LinuxPodSandboxConfig.fromPartial({ sysctls: bad, securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } }) });
      await assert.rejects(stack.cri.runtime.runPodSandbox({ config: failing, runtimeHandler: '' }), /sysctl|no_such_setting/);
      assert.deepEqual((await stack.cri.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: { pod: 'sysctl-fails' } } })).items, []);
      assert.deepEqual(readdirSync('/var/lib/cni/networks/berth').filter((f) => /^\d/.test(f)).sort(), ipsBefore, 'the IP CNI ADD gave is released');
      const left = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.includes(`${stack.dir}/state/executor/`) || (l.includes(`${stack.dir}/run/`) && !l.includes('/pause-rootfs/')));
      assert.deepEqual(left, [], 'no pinned namespace, /dev/shm or rootfs left mounted');
    }
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
      const left = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.includes(`${stack.dir}/state/executor/containers/`));
      assert.deepEqual(left, [], 'no rootfs left mounted');
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });
});

describe('what the conformance suite asks of hostnames, capabilities and users', () => {
  const capLines = (status: string) => status.split('\n').filter((l) => /^Cap(Bnd|Eff):/.test(l));

  test("a pod without a hostname gets the node's, whatever its metadata name", async () => {
    // containerd gives a pod whose config has no hostname the node's (critest names its pods with capitals, past 64 characters).
    const name = `Create-PodSandbox-for-container-${'0123456789'.repeat(4)}`;
    const config = podConfig(name, { hostname: '' });
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('host-name', ['/bin/sleep', '1000']), sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      const seen = await stack.cri.runtime.execSync({ containerId: id, cmd: ['/bin/sh', '-c', 'hostname; cat /etc/hostname; echo "$HOSTNAME"'], timeout: 10n });
      assert.equal(text(seen.stdout), `${hostname()}\n`.repeat(3), text(seen.stderr));
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });

  test("a privileged container and one that adds ALL run with the runtime's bounding set", async () => {
    // containerd grants a privileged container, and ALL, the capabilities the runtime itself holds (cap.Current), not every one the kernel knows.
    const runtimeCaps = /^CapBnd:\s*(\S+)$/m.exec(readFileSync(`/proc/${stack.pid('executor')}/status`, 'utf8'))?.[1];
    assert.ok(runtimeCaps, "the executor's bounding set");
    const config = podConfig('caps');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const cases = {
        privileged: criV1.LinuxContainerConfig.fromPartial({ securityContext: { privileged: true } }),
        'add-all': criV1.LinuxContainerConfig.fromPartial({ securityContext: { capabilities: { addCapabilities: ['ALL'] } } }),
      };
      for (const [name, linux] of Object.entries(cases)) {
        const cfg = containerConfig(name, ['/bin/sh', '-c', 'grep -E "^Cap(Bnd|Eff):" /proc/self/status; exec sleep 1000'], { linux });
        const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: cfg, sandboxConfig: config })).containerId;
        await stack.cri.runtime.startContainer({ containerId: id });
        const status = (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status!;
        assert.equal(status.state, criV1.ContainerState.CONTAINER_RUNNING, name);
        const log = await waitFor(`${name}'s capabilities in its log`, async () => {
          const lines = existsSync(status.logPath) ? capLines(readFileSync(status.logPath, 'utf8').replace(/^\S+ stdout F /gm, '')) : [];
          return lines.length === 2 ? lines : undefined;
        });
        assert.deepEqual(log.map((l) => l.split(':')[1]?.trim()), [runtimeCaps, runtimeCaps], name);
      }
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
  });

  test('run_as_group without run_as_user is refused, in a container and in a sandbox', async () => {
    // containerd (util.GenerateUserString) and CRI-O refuse a container's group without a user; containerd a sandbox's too.
    const config = podConfig('run-as');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const groupOnly = containerConfig('group-only', ['true'], { linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { runAsGroup: { value: 1002n } } }) });
      await assert.rejects(stack.cri.runtime.createContainer({ podSandboxId: podId, config: groupOnly, sandboxConfig: config }), category('invalid-argument'));
      assert.equal((await stack.cri.runtime.listContainers({ filter: undefined })).containers.length, 0, 'no container record');
      const both = containerConfig('user-and-group', ['/bin/sh', '-c', 'echo "$(id -u):$(id -g)"'], { linux: criV1.LinuxContainerConfig.fromPartial({ securityContext: { runAsUser: { value: 1001n }, runAsGroup: { value: 1002n } } }) });
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: both, sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      const s = await exited(id);
      await waitFor('the user and group in the log', async () => (/ stdout F 1001:1002$/m.test(existsSync(s.logPath) ? readFileSync(s.logPath, 'utf8') : '') ? true : undefined));
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
    }
    const podGroupOnly = podConfig('run-as-pod', { linux: criV1.LinuxPodSandboxConfig.fromPartial({ securityContext: { runAsGroup: { value: 1002n } } }) });
    await assert.rejects(stack.cri.runtime.runPodSandbox({ config: podGroupOnly, runtimeHandler: '' }), category('invalid-argument'));
    assert.deepEqual((await stack.cri.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: { pod: 'run-as-pod' } } })).items, []);
  });
});

describe('mount propagation', () => {
  test('a bidirectional mount carries the host’s new mounts in and the container’s out to the host', async () => {
    // containerd gives a container with a bidirectional mount an rshared root (runc's default rslave root would keep the
    // container's mounts from the host); critest's rshared spec checks both directions.
    const host = mkdtempSync('/var/tmp/berth-e2e-propagation-');
    await execFileAsync('mount', ['--bind', host, host]);
    await execFileAsync('mount', ['--make-shared', host]);
    const config = podConfig('propagation');
    const podId = (await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId;
    try {
      const mount = criV1.Mount.fromPartial({ containerPath: '/shared', hostPath: host, propagation: criV1.MountPropagation.PROPAGATION_BIDIRECTIONAL });
      const linux = criV1.LinuxContainerConfig.fromPartial({ securityContext: { privileged: true } });
      const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config: containerConfig('propagation', ['sleep', '600'], { mounts: [mount], linux }), sandboxConfig: config })).containerId;
      await stack.cri.runtime.startContainer({ containerId: id });
      const run = async (script: string) => text((await stack.cri.runtime.execSync({ containerId: id, cmd: ['sh', '-c', script], timeout: 10n })).stdout);
      await execFileAsync('mkdir', [join(host, 'from-host')]);
      await execFileAsync('mount', ['-t', 'tmpfs', 'tmpfs', join(host, 'from-host')]);
      writeFileSync(join(host, 'from-host', 'h'), 'host\n');
      assert.equal(await run('cat /shared/from-host/h'), 'host\n', "the host's mount reached the container");
      await run('mkdir /shared/from-container && mount -t tmpfs tmpfs /shared/from-container && echo container > /shared/from-container/c');
      assert.equal(readFileSync(join(host, 'from-container', 'c'), 'utf8'), 'container\n', "the container's mount reached the host");
    } finally {
      await stack.cri.runtime.removePodSandbox({ podSandboxId: podId });
      await execFileAsync('umount', ['-R', host]).catch(() => undefined);
      rmSync(host, { recursive: true, force: true });
    }
  });
});
