// Pod sandboxes: pinned network, IPC and UTS namespaces, CNI, the pod's
// hosts/resolv.conf/hostname files and /dev/shm, and the pause container
// that holds the pod's PID namespace.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@berth/errors';
import { inSpan } from '@berth/observability';
import { criV1, filterPods } from '@berth/proto';
import type { ExecutorContext } from './context.js';
import { cniAdd, cniDel, type CniPodArgs } from './cni.js';
import { loadCniConfig } from './cni-config.js';
import { InFlight } from './keyed.js';
import { buildSpec } from './oci-spec.js';
import { validateSysctls } from './oci-spec.js';
import type { PodRecord } from './records.js';
import { mount, pinNamespaces as pin, signalProcess, unmount } from '@berth/native';
import { isMountPoint, mountRootfs, unmountRootfs } from './rootfs.js';
import { processStart, stillRunning } from './runtime.js';
import { checkRunAs } from './user.js';

export const nowNanos = (): string => (BigInt(Date.now()) * 1_000_000n).toString();
export const newId = (): string => randomBytes(32).toString('hex');

const hostnamePattern = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/**
 * The pod's hostname: the one the config gives, or else the node's, as
 * containerd gives a pod without one (the pod's metadata name is no host
 * name: it may have capitals or be longer than one). A given one must be a
 * valid host name of at most 64 characters (InvalidArgumentError), where
 * containerd leaves it to the kernel's sethostname to refuse.
 */
export function podHostname(requested: string, nodeHostname: string): string {
  if (requested === '') return nodeHostname;
  if (!hostnamePattern.test(requested) || requested.length > 64) throw new InvalidArgumentError(`hostname ${JSON.stringify(requested)} is not a valid host name`);
  return requested;
}

function cniArgs(pod: PodRecord): CniPodArgs {
  return { containerId: pod.id, netns: pod.namespacePaths.net ?? '', ifName: 'eth0', podName: pod.name, podNamespace: pod.namespace, podUid: pod.uid, portMappings: pod.portMappings };
}

/** The pod's pinned namespaces that every container of it joins (none for the host's). */
export function podNamespaces(pod: PodRecord): { type: string; path: string }[] {
  const { net, uts, ipc } = pod.namespacePaths;
  return [...(net ? [{ type: 'network', path: net }] : []), ...(uts ? [{ type: 'uts', path: uts }] : []), ...(ipc ? [{ type: 'ipc', path: ipc }] : [])];
}

export function cgroupsPath(ctx: ExecutorContext, parent: string, id: string): string {
  if (ctx.cgroupDriver === 'systemd') return `${parent || 'system.slice'}:berth:${id}`;
  return `${parent || '/berth'}/berth-${id}`;
}

async function writePodFiles(pod: PodRecord, dns: criV1.DNSConfig | undefined): Promise<void> {
  const hosts = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::0\tip6-localnet', 'ff02::1\tip6-allnodes', 'ff02::2\tip6-allrouters'];
  if (pod.ip) hosts.push(`${pod.ip}\t${pod.hostname}`);
  await writeFile(join(pod.dir, 'hosts'), `${hosts.join('\n')}\n`, { mode: 0o644 });
  await writeFile(join(pod.dir, 'hostname'), `${pod.hostname}\n`, { mode: 0o644 });
  if (dns !== undefined && (dns.servers.length > 0 || dns.searches.length > 0 || dns.options.length > 0)) {
    for (const v of [...dns.servers, ...dns.searches, ...dns.options]) if (/[\s\0]/.test(v)) throw new InvalidArgumentError(`DNS config value ${JSON.stringify(v)} contains whitespace`);
    const lines = [...dns.servers.map((s) => `nameserver ${s}`), ...(dns.searches.length > 0 ? [`search ${dns.searches.join(' ')}`] : []), ...(dns.options.length > 0 ? [`options ${dns.options.join(' ')}`] : [])];
    await writeFile(join(pod.dir, 'resolv.conf'), `${lines.join('\n')}\n`, { mode: 0o644 });
  } else {
    await copyFile('/etc/resolv.conf', join(pod.dir, 'resolv.conf')).catch(() => writeFile(join(pod.dir, 'resolv.conf'), ''));
  }
}

/** Pins new network, IPC and UTS namespaces to files (bind mounts), so they outlive every process in the pod; sets the hostname in the UTS one. */
async function pinNamespaces(ctx: ExecutorContext, pod: PodRecord): Promise<void> {
  const dir = join(ctx.paths.nsDir, pod.id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths: PodRecord['namespacePaths'] = {};
  if (!pod.hostNetwork) {
    paths.net = join(dir, 'net');
    paths.uts = join(dir, 'uts');
  }
  if (!pod.hostIpc) paths.ipc = join(dir, 'ipc');
  if (Object.keys(paths).length === 0) return;
  for (const p of Object.values(paths)) await writeFile(p, '');
  pod.namespacePaths = paths;
  await pin({ ...paths, ...(paths.uts ? { hostname: pod.hostname } : {}) });
}

async function unpinNamespaces(ctx: ExecutorContext, pod: PodRecord): Promise<void> {
  for (const p of Object.values(pod.namespacePaths)) await unmount(p).catch(() => undefined);
  await rm(join(ctx.paths.nsDir, pod.id), { recursive: true, force: true });
}

/** Whether a sysctl is set on one network interface (`net.ipv4.conf.eth0.forwarding`), not on all, the defaults or lo. */
function namesInterface(key: string): boolean {
  const m = /^net[./](ipv4|ipv6)[./](conf|neigh)[./]([^./]+)[./]/.exec(key);
  return m !== null && !['all', 'default', 'lo'].includes(m[3]!);
}

function imageArgs(config: { Entrypoint?: string[] | null; Cmd?: string[] | null }): string[] {
  return [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
}

export class Pods {
  private readonly inFlight = new InFlight<criV1.RunPodSandboxResponse>();

  constructor(private readonly ctx: ExecutorContext) {}

  get(id: string): PodRecord {
    const pod = this.ctx.pods.lookup(id, 'pod sandbox');
    if (pod === undefined) throw new NotFoundError(`pod sandbox ${JSON.stringify(id)} not found`);
    return pod;
  }

  /**
   * RunPodSandbox. The same pod (name, namespace, uid, attempt) asked for
   * again, as the kubelet does after its deadline, gets the pod already made
   * or joins the call still making it.
   */
  async run(request: criV1.RunPodSandboxRequest): Promise<criV1.RunPodSandboxResponse> {
    const meta = request.config?.metadata;
    if (request.config === undefined || meta === undefined || meta.name === '' || meta.namespace === '' || meta.uid === '') throw new InvalidArgumentError('RunPodSandbox needs config.metadata with name, namespace and uid');
    const key = JSON.stringify([meta.namespace, meta.name, meta.uid, meta.attempt]);
    return this.inFlight.run(key, async () => {
      const taken = this.ctx.pods.all().find((p) => p.name === meta.name && p.namespace === meta.namespace && p.uid === meta.uid && p.attempt === meta.attempt);
      if (taken !== undefined) {
        if (taken.runtimeHandler !== request.runtimeHandler) throw new AlreadyExistsError(`pod sandbox ${meta.namespace}/${meta.name} attempt ${meta.attempt} already exists as ${taken.id} with another runtime handler`);
        return { podSandboxId: taken.id };
      }
      return this.create(request, request.config!, meta);
    });
  }

  private async create(request: criV1.RunPodSandboxRequest, config: criV1.PodSandboxConfig, meta: criV1.PodSandboxMetadata): Promise<criV1.RunPodSandboxResponse> {
    const handler = request.runtimeHandler;
    if (handler !== '' && this.ctx.runtimeFor(handler) === undefined) throw new NotFoundError(`no runtime handler ${JSON.stringify(handler)}`);
    const linux = config.linux;
    const ns = linux?.securityContext?.namespaceOptions;
    const hostNetwork = ns?.network === 2;
    const hostIpc = ns?.ipc === 2;
    const hostname = podHostname(config.hostname, osHostname());
    // The pause runs as root whatever the pod's user, but a group without a user is refused here as by containerd.
    checkRunAs(linux?.securityContext, 'pod security context');
    const sysctls = validateSysctls(linux?.sysctls ?? {}, hostNetwork, hostIpc);
    const portMappings = (config.portMappings ?? [])
      .filter((p) => p.hostPort > 0)
      .map((p) => {
        if (p.hostPort > 65535 || p.containerPort <= 0 || p.containerPort > 65535) throw new InvalidArgumentError(`port mapping ${p.hostPort}:${p.containerPort} is out of range`);
        return { hostPort: p.hostPort, containerPort: p.containerPort, protocol: ['tcp', 'udp', 'sctp'][p.protocol] ?? 'tcp', hostIP: p.hostIp };
      });
    const id = newId();
    const dir = join(this.ctx.paths.podsDir, id);
    const pod: PodRecord = {
      id,
      name: meta.name,
      uid: meta.uid,
      namespace: meta.namespace,
      attempt: meta.attempt,
      labels: config.labels,
      annotations: config.annotations,
      createdAt: nowNanos(),
      state: 'ready',
      hostname,
      logDirectory: config.logDirectory,
      runtimeHandler: handler,
      hostNetwork,
      hostIpc,
      pidMode: ns?.pid ?? 0,
      ip: '',
      additionalIps: [],
      portMappings,
      namespacePaths: {},
      pausePid: 0,
      cgroupParent: linux?.cgroupParent ?? '',
      dir,
      sysctls,
    };
    const undo: (() => Promise<unknown>)[] = [];
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      undo.push(() => rm(dir, { recursive: true, force: true }));
      if (config.logDirectory) await mkdir(config.logDirectory, { recursive: true, mode: 0o755 });
      const cni = hostNetwork ? undefined : await loadCniConfig(this.ctx.config.cni.confDir, this.ctx.config.cni.binDirs);
      if (cni !== undefined && cni.network === undefined) throw new InvalidArgumentError(`pod networking is not ready: ${cni.status.message}`);
      await inSpan('pod: pin namespaces', () => pinNamespaces(this.ctx, pod));
      undo.push(() => unpinNamespaces(this.ctx, pod));
      // The network and the pause are made side by side: each joins the pinned namespaces by path and
      // neither needs the other, except that the hosts file names the pod's IP and that a sysctl on
      // one of the pod's interfaces needs the interface, which CNI makes.
      const network = async (): Promise<void> => {
        const net = cni?.network;
        if (net !== undefined) {
          // DEL undoes an ADD that failed halfway too (a plugin after the bridge), as libcni's callers do.
          undo.push(() => cniDel(net, cniArgs(pod), this.ctx.config.cni.binDirs, pod.cniResult));
          const result = await inSpan('pod: CNI ADD', () => cniAdd(net, cniArgs(pod), this.ctx.config.cni.binDirs));
          pod.cniResult = result.raw;
          pod.ip = result.ips.find((a) => !a.includes(':')) ?? result.ips[0] ?? '';
          pod.additionalIps = result.ips.filter((a) => a !== pod.ip);
        }
        await inSpan('pod: files', () => writePodFiles(pod, config.dnsConfig));
      };
      const pause = () => this.startPause(pod, request, undo);
      if (Object.keys(sysctls).some(namesInterface)) {
        await network();
        await pause();
      } else {
        const steps = await Promise.allSettled([network(), pause()]);
        for (const step of steps) if (step.status === 'rejected') throw step.reason;
      }
      await inSpan('pod: record', () => this.ctx.pods.put(pod));
      this.ctx.emit(id, id, 'created');
      this.ctx.emit(id, id, 'started');
      this.ctx.logger.info({ pod: id, name: `${pod.namespace}/${pod.name}`, ip: pod.ip }, 'pod sandbox running');
      return { podSandboxId: id };
    } catch (err) {
      for (const step of undo.reverse()) await step().catch((e: unknown) => this.ctx.logger.warn({ err: e, pod: id }, 'cleanup after a failed RunPodSandbox'));
      throw err;
    }
  }

  /** The pod's /dev/shm and its pause container, created and started; each step done is pushed onto `undo`. */
  private async startPause(pod: PodRecord, request: criV1.RunPodSandboxRequest, undo: (() => Promise<unknown>)[]): Promise<void> {
    const { id, dir } = pod;
    const linux = request.config?.linux;
    if (!pod.hostIpc) {
      await mkdir(join(dir, 'shm'), { mode: 0o1777 });
      await mount('shm', join(dir, 'shm'), 'tmpfs', ['nosuid', 'nodev', 'noexec', 'mode=1777', 'size=65536k']);
      undo.push(() => unmount(join(dir, 'shm')));
    }
    const image = await inSpan('pod: sandbox image', () => this.ctx.images.sandboxImage());
    const bundle = join(dir, 'bundle');
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    pod.pauseRootfs = await inSpan('pod: pause rootfs', () => this.sharedPauseRootfs(image.record.topChainId));
    const namespaces = [{ type: 'mount' }, ...podNamespaces(pod), ...(pod.pidMode === 2 ? [] : [{ type: 'pid' }])];
    const args = imageArgs(image.config.config ?? {});
    const spec = buildSpec({
      args: args.length > 0 ? args : ['/pause'],
      env: image.config.config?.Env ?? [],
      cwd: '/',
      user: { uid: 0, gid: 0, additionalGids: [] },
      terminal: false,
      namespaces,
      cgroupsPath: cgroupsPath(this.ctx, pod.cgroupParent, id),
      readonlyRootfs: true,
      rootPath: pod.pauseRootfs.path,
      mounts: [],
      privileged: false,
      capabilities: [],
      noNewPrivileges: true,
      resources: linux?.resources,
      minOomScoreAdj: Math.max(this.ctx.minOomScoreAdj, -998),
      seccomp: linux?.securityContext?.seccomp,
      sysctls: pod.sysctls,
    });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const runtime = this.ctx.runtimeFor(pod.runtimeHandler)!;
    undo.push(() => runtime.delete(id));
    pod.pausePid = await inSpan('pod: runc run (pause)', () => runtime.runDetached(id, bundle));
    const pauseStart = await processStart(pod.pausePid);
    if (pauseStart !== undefined) pod.pauseStart = pauseStart;
  }

  private readonly mountingPauseRootfs = new InFlight<{ key: string; path: string }>();
  /** Shared pause root filesystems known to be mounted: checked in mountinfo once per executor, not per pod. */
  private readonly pauseRootfsMounted = new Set<string>();

  /**
   * The sandbox image's root filesystem, mounted once and shared by every
   * pause container of that image: the pause's rootfs is read-only (runc
   * remounts it so in the pause's own mount namespace), and runc only makes
   * the mount points it needs (/proc, /dev, /sys), the same for every pod,
   * in the snapshot's upper layer. A RunPodSandbox saves a snapshot and a
   * mount (and RemovePodSandbox their removal). The one a pod uses stays
   * mounted while the executor restarts (a second overlay mount of the same
   * upper layer is refused while the pauses' copies of the first live); the
   * executor's stop unmounts those no pod uses, and its start removes their
   * snapshots.
   */
  private sharedPauseRootfs(topChainId: string): Promise<{ key: string; path: string }> {
    const key = `pause-${topChainId.replace(/^sha256:/, '')}`;
    const path = join(this.ctx.paths.pauseRootfsDir, key);
    if (this.pauseRootfsMounted.has(key)) return Promise.resolve({ key, path });
    return this.mountingPauseRootfs.run(key, async () => {
      if (!(await isMountPoint(path))) await mountRootfs(this.ctx, key, topChainId, path);
      this.pauseRootfsMounted.add(key);
      return { key, path };
    });
  }

  private pauseRootfsInUse(): Set<string> {
    return new Set(this.ctx.pods.all().flatMap((p) => (p.pauseRootfs === undefined ? [] : [p.pauseRootfs.key])));
  }

  /** At start: the shared pause root filesystems no pod uses are unmounted and their snapshots removed. */
  async recover(): Promise<void> {
    const used = this.pauseRootfsInUse();
    const shared = (await this.ctx.store.snapshots.list()).filter((s) => s.key.startsWith('pause-') && !used.has(s.key));
    for (const s of shared) {
      await unmountRootfs(this.ctx, s.key, join(this.ctx.paths.pauseRootfsDir, s.key)).catch((err: unknown) => this.ctx.logger.warn({ err, snapshot: s.key }, 'removing an unused pause root filesystem'));
    }
  }

  /** At stop: the shared pause root filesystems no pod uses are unmounted (their snapshots go at the next start). */
  async releasePauseRootfs(): Promise<void> {
    const used = this.pauseRootfsInUse();
    const dirs = await readdir(this.ctx.paths.pauseRootfsDir).catch(() => [] as string[]);
    for (const key of dirs.filter((k) => !used.has(k))) {
      const path = join(this.ctx.paths.pauseRootfsDir, key);
      this.pauseRootfsMounted.delete(key);
      await unmount(path).catch(() => undefined);
      await rmdir(path).catch(() => undefined);
    }
  }

  /** Whether the pod's pause process still runs (a reboot or a kill ends it). */
  async ready(pod: PodRecord): Promise<boolean> {
    if (pod.state !== 'ready') return false;
    return stillRunning(pod.pausePid, pod.pauseStart);
  }

  /** StopPodSandbox of the pod with the full id `id` (a prefix is resolved first: `RecordStore.idOf`). */
  async stop(id: string): Promise<void> {
    const pod = this.ctx.pods.get(id);
    if (pod === undefined) return; // idempotent: a pod that is gone is stopped
    await this.ctx.containers.stopAllOf(pod.id);
    // Recorded as stopped only once every step below is done: nothing is left to undo.
    if (pod.state === 'notready') return;
    const runtime = this.ctx.runtimeFor(pod.runtimeHandler)!;
    // The pause goes (`runc delete --force` kills it first) while CNI DEL runs: the pod's network
    // lives in its pinned namespace, not in the pause, so neither waits for the other.
    const network = async (): Promise<void> => {
      if (pod.cniResult === undefined && (pod.hostNetwork || pod.state !== 'ready')) return;
      const { network } = await loadCniConfig(this.ctx.config.cni.confDir, this.ctx.config.cni.binDirs);
      if (network !== undefined && pod.namespacePaths.net) await cniDel(network, cniArgs(pod), this.ctx.config.cni.binDirs, pod.cniResult);
    };
    // `runc delete --force` of a running container signals it and then sleeps 100 ms before looking again:
    // the pause is killed from here (by pid and start time) and its end awaited, so runc finds it stopped.
    const pause = async (): Promise<void> => {
      if (pod.pauseStart !== undefined && signalProcess(pod.pausePid, pod.pauseStart, 'SIGKILL')) {
        for (const until = Date.now() + 2000; Date.now() < until && (await stillRunning(pod.pausePid, pod.pauseStart)); ) await new Promise((r) => setTimeout(r, 2));
      }
      await runtime.delete(pod.id);
    };
    const steps = await Promise.allSettled([inSpan('pod: pause delete', pause), inSpan('pod: CNI DEL', network)]);
    for (const step of steps) if (step.status === 'rejected') throw step.reason;
    await unpinNamespaces(this.ctx, pod);
    await unmount(join(pod.dir, 'shm')).catch(() => undefined);
    const wasReady = pod.state === 'ready';
    pod.state = 'notready';
    delete pod.cniResult;
    await this.ctx.pods.put(pod);
    if (wasReady) this.ctx.emit(pod.id, pod.id, 'stopped');
  }

  /** RemovePodSandbox of the pod with the full id `id`, as for `stop`. */
  async remove(id: string): Promise<void> {
    const pod = this.ctx.pods.get(id);
    if (pod === undefined) return;
    await this.stop(id);
    await this.ctx.containers.removeAllOf(pod.id);
    // A pod from before pause root filesystems were shared has its own.
    if (pod.pauseRootfs === undefined) await unmountRootfs(this.ctx, `pod-${pod.id}`, join(pod.dir, 'bundle', 'rootfs'));
    await rm(pod.dir, { recursive: true, force: true });
    await this.ctx.pods.delete(pod.id);
    this.ctx.emit(pod.id, pod.id, 'deleted');
  }

  async toStatus(pod: PodRecord, verbose: boolean): Promise<criV1.PodSandboxStatusResponse> {
    return this.statusOf(pod, await this.ready(pod), verbose);
  }

  /** The status of a pod whose readiness is known. */
  statusOf(pod: PodRecord, ready: boolean, verbose: boolean): criV1.PodSandboxStatusResponse {
    const ns = { network: pod.hostNetwork ? 2 : 0, pid: pod.pidMode === 2 ? 2 : pod.pidMode === 1 ? 1 : 0, ipc: pod.hostIpc ? 2 : 0, targetId: '', usernsOptions: undefined };
    return {
      status: {
        id: pod.id,
        metadata: { name: pod.name, uid: pod.uid, namespace: pod.namespace, attempt: pod.attempt },
        state: ready ? 0 : 1,
        createdAt: BigInt(pod.createdAt),
        network: { ip: pod.ip, additionalIps: pod.additionalIps.map((ip) => ({ ip })) },
        linux: { namespaces: { options: ns } },
        labels: pod.labels,
        annotations: pod.annotations,
        runtimeHandler: pod.runtimeHandler,
      },
      info: verbose ? { info: JSON.stringify({ pid: pod.pausePid, pauseRootfs: pod.pauseRootfs?.path ?? join(pod.dir, 'bundle', 'rootfs'), hostname: pod.hostname, namespaces: pod.namespacePaths, cgroupParent: pod.cgroupParent, sysctls: pod.sysctls, cni: pod.cniResult ?? null }) } : {},
      containersStatuses: [],
      timestamp: BigInt(Date.now()) * 1_000_000n,
    };
  }

  async list(filter: criV1.PodSandboxFilter | undefined): Promise<criV1.PodSandbox[]> {
    const all = await Promise.all(
      [...this.ctx.pods.all()].map(async (pod) => ({
        id: pod.id,
        metadata: { name: pod.name, uid: pod.uid, namespace: pod.namespace, attempt: pod.attempt },
        state: (await this.ready(pod)) ? criV1.PodSandboxState.SANDBOX_READY : criV1.PodSandboxState.SANDBOX_NOTREADY,
        createdAt: BigInt(pod.createdAt),
        labels: pod.labels,
        annotations: pod.annotations,
        runtimeHandler: pod.runtimeHandler,
      })),
    );
    return filterPods(all, filter);
  }
}
