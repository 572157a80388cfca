// Composition root of berth-executor: the service that owns pods and
// containers (runc, conmon, CNI). Everything is wired here.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { subjects } from '@berth/bus';
import { builtinSandboxImage, internalSocket } from '@berth/config';
import { runDaemon, serveGrpc } from '@berth/daemon';
import { criV1, executorV1 } from '@berth/proto';
import { buildService, type Handlers } from '@berth/rpc';
import { RemoteStore } from '@berth/store-api';
import { detectCgroupVersion, resolveCgroupDriver } from './cgroups.js';
import { checkCniConfig } from './cni-config.js';
import { Containers } from './containers.js';
import type { ExecutorContext } from './context.js';
import { ImageResolver } from './images.js';
import { KeyedLock } from './keyed.js';
import { boundingCapabilities } from './oci-spec.js';
import { Pods } from './pods.js';
import { CgroupReader, Stats } from './stats.js';
import { RecordStore, type ContainerRecord, type PodRecord } from './records.js';
import { OciRuntime } from './runtime.js';
import { probeOciRuntime } from './runtime-info.js';
import { StreamingServer } from './streaming/server.js';

await runDaemon({
  service: 'executor',
  async start(ctx) {
    const { config } = ctx;
    const cgroupDriver = resolveCgroupDriver(config.cgroupDriver);
    const cgroupVersion = detectCgroupVersion();
    const runtimeInfo = await probeOciRuntime(config.runtimePath);
    if (!runtimeInfo.ready) ctx.logger.warn({ runtime: runtimeInfo }, 'OCI runtime not usable');
    ctx.logger.info({ cgroupDriver, cgroupVersion, runtime: runtimeInfo.version }, 'node facts');
    const network = () => checkCniConfig(config.cni.confDir, config.cni.binDirs);

    const run = join(config.runDir, 'executor');
    const runtimes = new Map<string, OciRuntime>();
    for (const [handler, binary] of Object.entries({ '': config.runtimePath, runc: config.runtimePath, ...config.runtimes })) {
      const name = handler === '' ? 'default' : handler;
      runtimes.set(handler, new OciRuntime({ binary, root: join(run, 'runtime', name), conmon: config.conmonPath, exitDir: join(run, 'exits'), attachDir: join(run, 'attach') }));
    }
    for (const r of runtimes.values()) await r.init();
    const store = new RemoteStore(`unix://${internalSocket(config, 'store')}`, { timeoutMs: 10 * 60 * 1000 });
    ctx.onShutdown(() => store.close());
    const pods = new RecordStore<PodRecord>(join(config.stateDir, 'executor', 'pod-records'));
    const containerRecords = new RecordStore<ContainerRecord>(join(config.stateDir, 'executor', 'container-records'));
    const containerRemovals = new RecordStore<ContainerRecord>(join(config.stateDir, 'executor', 'container-removals'));
    await pods.load();
    await containerRecords.load();
    await containerRemovals.load();
    const context: ExecutorContext = {
      config,
      logger: ctx.logger,
      paths: { podsDir: join(config.stateDir, 'executor', 'pods'), containersDir: join(config.stateDir, 'executor', 'containers'), nsDir: join(run, 'ns'), scratchDir: join(run, 'scratch'), pauseRootfsDir: join(run, 'pause-rootfs') },
      cgroupDriver,
      minOomScoreAdj: Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim()) || 0,
      hostHasAppArmor: (() => {
        try {
          return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
        } catch {
          return false;
        }
      })(),
      allCapabilities: boundingCapabilities(readFileSync('/proc/self/status', 'utf8')),
      store,
      images: new ImageResolver(store, ctx.bus, config.sandboxImage || builtinSandboxImage(ctx.version), config.sandboxImage === ''),
      pods,
      containerRecords,
      containerRemovals,
      containers: { stopAllOf: async () => undefined, removeAllOf: async () => undefined },
      runtimeFor: (handler) => runtimes.get(handler),
      // An event carries the statuses as they are at that moment: a client
      // reading it later, after a removal say, still sees what happened.
      emit: (containerId, podSandboxId, type) => {
        const podEvent = containerId === podSandboxId;
        const pod = podEvent && type === 'deleted' ? undefined : pods.items.get(podSandboxId);
        const container = podEvent || type === 'deleted' ? undefined : containerRecords.items.get(containerId);
        const ready = pod?.state === 'ready' && !(podEvent && type === 'stopped');
        ctx.bus.publish(subjects.containerEvent, {
          containerId,
          podSandboxId,
          type,
          at: (BigInt(Date.now()) * 1_000_000n).toString(),
          mono: process.hrtime.bigint().toString(),
          podSandboxStatus: pod === undefined ? undefined : criV1.PodSandboxStatus.toJSON(podManager.statusOf(pod, ready, false).status!),
          containerStatus: container === undefined ? undefined : criV1.ContainerStatus.toJSON(containers.statusOf(container, false).status!),
        });
      },
    };
    const podManager = new Pods(context);
    const containers = new Containers(context, podManager);
    context.containers = containers;
    await podManager.recover();
    ctx.onShutdown(() => podManager.releasePauseRootfs());
    await containers.recover();
    ctx.onShutdown(containers.watchExits());
    ctx.logger.info({ pods: pods.items.size, containers: containerRecords.items.size }, 'records loaded');

    const streaming = new StreamingServer(context, containers, podManager, ctx.telemetry.meter);
    ctx.logger.info({ url: await streaming.start() }, 'streaming server listening');
    ctx.onShutdown(() => streaming.stop());

    const stats = new Stats(context, podManager, containers, new CgroupReader(cgroupVersion));
    // Calls on one pod or container run one at a time, by its full id: a prefix is resolved first.
    const locks = new KeyedLock();
    const locked = (id: string, call: (id: string) => Promise<unknown>) => locks.run(id, () => call(id)).then(() => ({}));
    // Stop and remove succeed for an id of nothing (RecordStore.idOf); the other calls need what they name.
    const podId = (id: string) => pods.idOf(id, 'pod sandbox');
    const containerId = (id: string) => containerRecords.idOf(id, 'container');
    const handlers: Handlers<typeof executorV1.ExecutorService> = {
      info: async () => ({ version: ctx.version, pid: process.pid, cgroupDriver, cgroupVersion, runtime: runtimeInfo, network: await network() }),
      runPodSandbox: (r) => podManager.run(r),
      stopPodSandbox: async (r) => locked(podId(r.podSandboxId), (id) => podManager.stop(id)),
      removePodSandbox: async (r) => locked(podId(r.podSandboxId), (id) => podManager.remove(id)),
      podSandboxStatus: async (r) => podManager.toStatus(podManager.get(r.podSandboxId), r.verbose),
      listPodSandbox: async (r) => ({ items: await podManager.list(r.filter) }),
      createContainer: (r) => containers.create(r),
      startContainer: async (r) => locked(containers.get(r.containerId).id, (id) => containers.start(id)),
      stopContainer: async (r) => locked(containerId(r.containerId), (id) => containers.stop(id, Number(r.timeout))),
      removeContainer: async (r) => locked(containerId(r.containerId), (id) => containers.remove(id)),
      containerStatus: async (r) => containers.status(r.containerId, r.verbose),
      listContainers: async (r) => ({ containers: await containers.list(r.filter) }),
      execSync: (r) => containers.execSync(r),
      updateContainerResources: async (r) => locked(containers.get(r.containerId).id, (id) => containers.updateResources({ ...r, containerId: id })),
      reopenContainerLog: async (r) => (await containers.reopenLog(r.containerId), {}),
      containerStats: async (r) => {
        const c = containers.get(r.containerId);
        return { stats: await stats.container(await containers.refresh(c), pods.get(c.podId)) };
      },
      listContainerStats: async (r) => ({ stats: await stats.listContainers(r.filter) }),
      podSandboxStats: async (r) => ({ stats: await stats.pod(podManager.get(r.podSandboxId)) }),
      listPodSandboxStats: async (r) => ({ stats: await stats.listPods(r.filter) }),
      exec: (r) => streaming.exec(r),
      attach: (r) => streaming.attach(r),
      portForward: (r) => streaming.portForward(r),
      updateRuntimeConfig: async (r) => {
        const cidr = r.runtimeConfig?.networkConfig?.podCidr ?? '';
        await writeFile(join(config.stateDir, 'executor', 'runtime-config.json'), JSON.stringify({ podCidr: cidr }));
        ctx.logger.info({ podCidr: cidr }, 'runtime config updated');
        return {};
      },
    };
    await serveGrpc(ctx, internalSocket(config, 'executor'), [buildService(executorV1.ExecutorService, handlers, { logger: ctx.logger, service: 'executor' })]);
    return async () => ({ runtime: runtimeInfo.ready ? { ok: true } : { ok: false, message: runtimeInfo.message } });
  },
});
