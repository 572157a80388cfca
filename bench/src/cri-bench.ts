// CRI benchmarks: Berth against containerd's CRI on the same machine, driven
// through the same client code with the same images, runs alternating
// (A B A B) so machine drift cancels out; plus bare runc as the floor of
// create+start, sampled in turn with them.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { imageSpec } from '@berth/client';
import { describeExit, spawnProcess } from '@berth/native';
import { buildImage, pushBlobs, pushImage, pushManifest, readOciLayout, type BuiltImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, startRegistry } from '@berth/testing';
import { startBerth, startContainerd, type Peer } from './peers.js';
import { cpuSeconds, rssBytes } from './procs.js';
import { breakdown, startSpanCollector, type Breakdown } from './spans.js';
import { summarize } from './stats.js';

const repoRoot = resolve(import.meta.dirname, '../..');

/** The name of the Version calls in the results: the per-call floor of each runtime's server. */
export const versionCall = 'Version (no work)';

export interface Compared {
  berth: { median: number; p90: number; n: number; samples: number[] };
  containerd: { median: number; p90: number; n: number; samples: number[] };
  /** berth median / containerd median: below 1 is Berth faster. */
  ratio: number;
}

type Samples = Record<string, { berth: number[]; containerd: number[] }>;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

function podConfig(name: string): criV1.PodSandboxConfig {
  return criV1.PodSandboxConfig.fromPartial({
    metadata: { name, namespace: 'bench', uid: `uid-${name}`, attempt: 0 },
    hostname: name.slice(0, 60),
    // As the kubelet does: a pod cgroup under a parent (containerd's pod stats need one).
    linux: { cgroupParent: `/berth-bench/pod-${name}`, securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } },
  });
}

function containerConfig(name: string, image: string): criV1.ContainerConfig {
  return criV1.ContainerConfig.fromPartial({ metadata: { name, attempt: 0 }, image: { image }, command: ['/bin/sleep', '100000'], linux: { securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } } });
}

/** A busybox image with one extra small layer, so each variant is a cold pull. */
async function busyboxVariant(tag: string): Promise<BuiltImage> {
  return buildImage({ layers: [busyboxRootfs(), [{ type: 'file', path: '/variant', content: `${tag} ${randomBytes(8).toString('hex')}` }]], config: { Cmd: ['/bin/sh'] } });
}

/** Five layers of incompressible data, about 200 MB in all. */
async function bigImage(): Promise<BuiltImage> {
  const layers = [busyboxRootfs()];
  for (let i = 0; i < 4; i++) layers.push([{ type: 'file', path: `/data/layer-${i}.bin`, content: randomBytes(50 * 1024 * 1024) }]);
  return buildImage({ layers, config: { Cmd: ['/bin/sh'] } });
}

export interface Resources {
  /** Resident memory of the daemons with no pods (Berth: berthd, the four services and nats-server). */
  idleRssMiB: number;
  /** Per running pod (one container each): the helpers' memory (conmon; containerd's shims) and the daemons' growth. */
  perPodHelperRssMiB: number;
  perPodDaemonRssMiB: number;
  pods: number;
  /** CPU seconds of daemons and helpers during the kubelet-like polling load. */
  pollingCpuSeconds: number;
  pollingSeconds: number;
  /** Blob bytes the registry served for 50 concurrent pulls of one image, over the image's blob bytes. */
  concurrentPullBytesRatio: number;
}

/** An HTTP proxy in front of the registry that counts the bytes of blob responses. */
async function startCountingProxy(target: URL): Promise<{ host: string; bytes(): number; stop(): Promise<void> }> {
  let count = 0;
  const server = createServer((req, res) => {
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
      if (isBlob) ur.on('data', (c: Buffer) => (count += c.length));
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { host: `127.0.0.1:${port}`, bytes: () => count, stop: () => new Promise((r) => server.close(() => r())) };
}

/**
 * The floor of CreateContainer+StartContainer: bare `runc create` + `runc
 * start` of the same rootfs, one sample per call, so that it is measured in
 * turn with the runtimes' own runs and under the same load. runc starts
 * through posix_spawn (no fork of this process to inflate the floor), with
 * its stdio on /dev/null, as the container inherits it.
 */
function runcFloor(base: BuiltImage): { sample(): Promise<number>; remove(): void } {
  const work = mkdtempSync('/var/tmp/berth-bench-runc-');
  const bundle = join(work, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  for (const layer of base.manifest.layers) execFileSync('tar', ['-x', '-C', join(bundle, 'rootfs')], { input: gunzipSync(base.blobs.get(layer.digest)!) });
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean } };
  spec.process.args = ['/bin/sleep', '100000'];
  spec.process.terminal = false;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const runc = async (...args: string[]): Promise<void> => {
    const exit = await spawnProcess('runc', ['--root', join(work, 'runc'), ...args]).exited;
    if (exit.code !== 0) throw new Error(`runc ${args[0]} failed: ${describeExit(exit)}`);
  };
  let n = 0;
  return {
    async sample() {
      const id = `bench-floor-${n++}`;
      const t = performance.now();
      await runc('create', '--bundle', bundle, id);
      await runc('start', id);
      const ms = performance.now() - t;
      await runc('delete', '--force', id);
      return ms;
    },
    remove: () => rmSync(work, { recursive: true, force: true }),
  };
}

export async function benchCri(options: { quick: boolean }): Promise<{ results: Record<string, Compared>; floor: { createStartMs: { median: number; p90: number } }; resources: Record<Peer['name'], Resources>; breakdowns: Breakdown[]; notes: string[] }> {
  const runs = options.quick ? 5 : 20;
  const listSize = options.quick ? 50 : 200;
  const samples: Samples = {};
  const record = (name: string, peer: Peer['name'], ms: number): void => {
    (samples[name] ??= { berth: [], containerd: [] })[peer].push(ms);
  };
  const notes: string[] = [];

  const registry = await startRegistry();
  const base = await buildImage({ layers: [busyboxRootfs()], config: { Cmd: ['/bin/sh'] } });
  await pushImage(registry.url, 'bench/busybox', 'base', base);
  const pause = await readOciLayout(join(repoRoot, 'apps/pause/dist/oci'), 'berth.local/pause:0.1.0');
  await pushBlobs(registry.url, 'bench/pause', pause.blobs);
  await pushManifest(registry.url, 'bench/pause', 'v1', pause.blobs.get(pause.manifestDigest)!, 'application/vnd.oci.image.manifest.v1+json');
  const baseName = `${registry.host}/bench/busybox:base`;

  const proxy = await startCountingProxy(new URL(registry.url));
  const collector = await startSpanCollector();
  /** When each workload ran, to find its calls' traces. */
  const windows: Record<string, [number, number]> = {};
  const berth = await startBerth(collector.endpoint);
  const containerd = await startContainerd([registry.host, proxy.host], `${registry.host}/bench/pause:v1`);
  const resources = {} as Record<Peer['name'], Resources>;
  const peers = [berth, containerd];
  const floorRuns = runcFloor(base);
  const floor: number[] = [];
  try {
    for (const p of peers) await p.cri.image.pullImage({ image: imageSpec(baseName), auth: undefined, sandboxConfig: undefined });

    // Pod lifecycle (one warm-up each first).
    windows['pods'] = [Date.now(), Infinity];
    for (let i = -1; i < runs; i++) {
      for (const p of peers) {
        const config = podConfig(`pod-${p.name}-${i + 1}`);
        const [run, { podSandboxId }] = await timed(() => p.cri.runtime.runPodSandbox({ config, runtimeHandler: '' }));
        const [status] = await timed(() => p.cri.runtime.podSandboxStatus({ podSandboxId, verbose: false }));
        const [stop] = await timed(() => p.cri.runtime.stopPodSandbox({ podSandboxId }));
        const [remove] = await timed(() => p.cri.runtime.removePodSandbox({ podSandboxId }));
        if (i < 0) continue;
        record('RunPodSandbox', p.name, run);
        record('PodSandboxStatus', p.name, status);
        record('StopPodSandbox', p.name, stop);
        record('RemovePodSandbox', p.name, remove);
      }
    }

    windows['pods'][1] = Date.now();
    // Container lifecycle in one pod per runtime.
    const pods = new Map<Peer['name'], { id: string; config: criV1.PodSandboxConfig }>();
    for (const p of peers) {
      const config = podConfig(`ctr-${p.name}`);
      pods.set(p.name, { id: (await p.cri.runtime.runPodSandbox({ config, runtimeHandler: '' })).podSandboxId, config });
    }
    windows['containers'] = [Date.now(), Infinity];
    for (let i = -1; i < runs; i++) {
      const bare = await floorRuns.sample();
      if (i >= 0) floor.push(bare);
      for (const p of peers) {
        const pod = pods.get(p.name)!;
        const [create, { containerId }] = await timed(() => p.cri.runtime.createContainer({ podSandboxId: pod.id, config: containerConfig(`c${i + 1}`, baseName), sandboxConfig: pod.config }));
        const [start] = await timed(() => p.cri.runtime.startContainer({ containerId }));
        const [status] = await timed(() => p.cri.runtime.containerStatus({ containerId, verbose: false }));
        const [stop] = await timed(() => p.cri.runtime.stopContainer({ containerId, timeout: 10n }));
        const [remove] = await timed(() => p.cri.runtime.removeContainer({ containerId }));
        if (i < 0) continue;
        record('CreateContainer', p.name, create);
        record('StartContainer', p.name, start);
        record('CreateContainer+StartContainer', p.name, create + start);
        record('ContainerStatus', p.name, status);
        record('StopContainer', p.name, stop);
        record('RemoveContainer', p.name, remove);
      }
    }

    windows['containers'][1] = Date.now();
    // Pod + container from nothing to running.
    for (let i = 0; i < Math.max(3, runs / 2); i++) {
      for (const p of peers) {
        const config = podConfig(`full-${p.name}-${i}`);
        const [ms, podId] = await timed(async () => {
          const { podSandboxId } = await p.cri.runtime.runPodSandbox({ config, runtimeHandler: '' });
          const { containerId } = await p.cri.runtime.createContainer({ podSandboxId, config: containerConfig('app', baseName), sandboxConfig: config });
          await p.cri.runtime.startContainer({ containerId });
          return podSandboxId;
        });
        record('pod+container to running', p.name, ms);
        await p.cri.runtime.stopPodSandbox({ podSandboxId: podId });
        await p.cri.runtime.removePodSandbox({ podSandboxId: podId });
      }
    }

    // List and status with many containers (created, in the container pod).
    for (const p of peers) {
      const pod = pods.get(p.name)!;
      for (let i = 0; i < listSize; i++) await p.cri.runtime.createContainer({ podSandboxId: pod.id, config: containerConfig(`many-${i}`, baseName), sandboxConfig: pod.config });
    }
    const someId = new Map<Peer['name'], string>();
    for (const p of peers) someId.set(p.name, (await p.cri.runtime.listContainers({ filter: undefined })).containers[0]!.id);
    for (let i = 0; i < runs * 2; i++) {
      for (const p of peers) {
        record(`ListContainers (${listSize})`, p.name, (await timed(() => p.cri.runtime.listContainers({ filter: undefined })))[0]);
        record(`ContainerStatus (${listSize})`, p.name, (await timed(() => p.cri.runtime.containerStatus({ containerId: someId.get(p.name)!, verbose: false })))[0]);
        record(`ListPodSandbox (${listSize})`, p.name, (await timed(() => p.cri.runtime.listPodSandbox({ filter: undefined })))[0]);
        // A call that does no work: what the transport and the server's framework cost each runtime.
        record(versionCall, p.name, (await timed(() => p.cri.runtime.version({ version: '' })))[0]);
      }
    }
    for (const p of peers) await p.cri.runtime.removePodSandbox({ podSandboxId: pods.get(p.name)!.id });

    // Pulls: cold (a fresh variant each run), warm re-pull, and a ~200 MB five-layer image.
    const pullRuns = options.quick ? 2 : 5;
    windows['small pulls'] = [Date.now(), Infinity];
    for (let i = 0; i < pullRuns; i++) {
      for (const p of peers) {
        const tag = `${p.name}-${i}`;
        await pushImage(registry.url, 'bench/variant', tag, await busyboxVariant(tag));
        const name = `${registry.host}/bench/variant:${tag}`;
        record('PullImage cold (busybox)', p.name, (await timed(() => p.cri.image.pullImage({ image: imageSpec(name), auth: undefined, sandboxConfig: undefined })))[0]);
        record('PullImage warm re-pull', p.name, (await timed(() => p.cri.image.pullImage({ image: imageSpec(name), auth: undefined, sandboxConfig: undefined })))[0]);
      }
    }
    windows['small pulls'][1] = Date.now();
    windows['big pull'] = [Date.now(), Infinity];
    for (let i = 0; i < (options.quick ? 1 : 3); i++) {
      for (const p of peers) {
        const tag = `${p.name}-${i}`;
        await pushImage(registry.url, 'bench/big', tag, await bigImage());
        record('PullImage cold (5 layers, 200 MB)', p.name, (await timed(() => p.cri.image.pullImage({ image: imageSpec(`${registry.host}/bench/big:${tag}`), auth: undefined, sandboxConfig: undefined })))[0]);
      }
    }

    windows['big pull'][1] = Date.now();
    // 50 concurrent pulls of one image through the counting proxy: how many blob bytes did the registry serve?
    for (const p of peers) {
      const tag = `concurrent-${p.name}`;
      // One layer the runtime cannot have yet, so every blob byte must come from the registry once.
      const image = await buildImage({ layers: [[...busyboxRootfs(), { type: 'file', path: '/data.bin', content: randomBytes(16 * 1024 * 1024) }]], config: { Cmd: ['/bin/sh'] } });
      await pushImage(registry.url, 'bench/concurrent', tag, image);
      const imageBytes = image.manifest.config.size + image.manifest.layers.reduce((a, l) => a + l.size, 0);
      const before = proxy.bytes();
      const name = `${proxy.host}/bench/concurrent:${tag}`;
      const [ms] = await timed(() => Promise.all(Array.from({ length: 50 }, () => p.cri.image.pullImage({ image: imageSpec(name), auth: undefined, sandboxConfig: undefined }))));
      record('50 concurrent PullImage (all done)', p.name, ms);
      (resources[p.name] ??= {} as Resources).concurrentPullBytesRatio = (proxy.bytes() - before) / imageBytes;
    }

    // Memory: idle daemons, then the memory each running pod adds; CPU under a kubelet-like polling load.
    const podCount = options.quick ? 5 : 20;
    const pollSeconds = options.quick ? 15 : 60;
    await new Promise((r) => setTimeout(r, 2000));
    for (const p of peers) resources[p.name].idleRssMiB = rssBytes(p.daemonPids()) / 2 ** 20;
    const running = new Map<Peer['name'], string[]>();
    for (const p of peers) {
      const ids: string[] = [];
      for (let i = 0; i < podCount; i++) {
        const config = podConfig(`load-${p.name}-${i}`);
        const { podSandboxId } = await p.cri.runtime.runPodSandbox({ config, runtimeHandler: '' });
        const { containerId } = await p.cri.runtime.createContainer({ podSandboxId, config: containerConfig('app', baseName), sandboxConfig: config });
        await p.cri.runtime.startContainer({ containerId });
        ids.push(podSandboxId);
      }
      running.set(p.name, ids);
    }
    await new Promise((r) => setTimeout(r, 2000));
    for (const p of peers) {
      resources[p.name].pods = podCount;
      resources[p.name].perPodHelperRssMiB = rssBytes(p.helperPids()) / 2 ** 20 / podCount;
      resources[p.name].perPodDaemonRssMiB = (rssBytes(p.daemonPids()) / 2 ** 20 - resources[p.name].idleRssMiB) / podCount;
    }
    windows['polling'] = [Date.now(), Infinity];
    for (const p of peers) {
      const pids = () => [...p.daemonPids(), ...p.helperPids()];
      const cpuBefore = cpuSeconds(pids());
      const until = Date.now() + pollSeconds * 1000;
      for (let tick = 0; Date.now() < until; tick++) {
        const next = Date.now() + 1000;
        await p.cri.runtime.listPodSandbox({ filter: undefined });
        await p.cri.runtime.listContainers({ filter: undefined });
        if (tick % 10 === 0) {
          record(`ListContainerStats (${podCount} pods)`, p.name, (await timed(() => p.cri.runtime.listContainerStats({ filter: undefined })))[0]);
          record(`ListPodSandboxStats (${podCount} pods)`, p.name, (await timed(() => p.cri.runtime.listPodSandboxStats({ filter: undefined })))[0]);
          record('ImageFsInfo', p.name, (await timed(() => p.cri.image.imageFsInfo({})))[0]);
        }
        await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      }
      resources[p.name].pollingCpuSeconds = cpuSeconds(pids()) - cpuBefore;
      resources[p.name].pollingSeconds = pollSeconds;
    }
    windows['polling'][1] = Date.now();
    for (const p of peers) for (const id of running.get(p.name) ?? []) await p.cri.runtime.removePodSandbox({ podSandboxId: id });
  } finally {
    floorRuns.remove();
    await proxy.stop();
    await berth.stop().catch((e: unknown) => notes.push(`stopping berth: ${String(e)}`));
    await containerd.stop().catch((e: unknown) => notes.push(`stopping containerd: ${String(e)}`));
    await registry.stop();
  }
  // Stopping the stack flushed its spans.
  await collector.stop();
  const breakdowns = [
    breakdown(collector.spans, 'RunPodSandbox', ...windows['pods']!),
    breakdown(collector.spans, 'CreateContainer', ...windows['containers']!),
    breakdown(collector.spans, 'StartContainer', ...windows['containers']!),
    breakdown(collector.spans, 'ContainerStatus', ...windows['containers']!),
    breakdown(collector.spans, 'StopContainer', ...windows['containers']!),
    breakdown(collector.spans, 'RemoveContainer', ...windows['containers']!),
    breakdown(collector.spans, 'ImageFsInfo', ...windows['polling']!),
    breakdown(collector.spans, 'PullImage', ...windows['small pulls']!, 'PullImage, busybox (cold pulls and re-pulls)'),
    breakdown(collector.spans, 'PullImage', ...windows['big pull']!, 'PullImage, 5 layers, 200 MB'),
  ].filter((b): b is Breakdown => b !== undefined);

  const results: Record<string, Compared> = {};
  for (const [name, s] of Object.entries(samples)) {
    const b = { ...summarize(s.berth), samples: s.berth };
    const c = { ...summarize(s.containerd), samples: s.containerd };
    results[name] = { berth: b, containerd: c, ratio: b.median / c.median };
  }
  const f = summarize(floor);
  return { results, floor: { createStartMs: { median: f.median, p90: f.p90 } }, resources, breakdowns, notes };
}
