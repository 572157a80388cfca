// Containers: config.json from the CRI config and the image, a rootfs
// snapshot, conmon for logs and the exit code; status from the records,
// the runtime and conmon's exit files.
import { watch } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlreadyExistsError, DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@berth/errors';
import { inSpan } from '@berth/observability';
import { filterContainers, type criV1 } from '@berth/proto';
import type { ExecutorContext } from './context.js';
import { apparmorProfile, buildSpec, capabilities, localhostRef, resourcesSpec, type LinuxSpec, type MountSpec } from './oci-spec.js';
import { cgroupsPath, newId, nowNanos, podNamespaces, type Pods } from './pods.js';
import { InFlight } from './keyed.js';
import { conmonControl } from './streaming/sessions.js';
import type { ContainerRecord, PodRecord } from './records.js';
import { signalProcess, unmount } from '@berth/native';
import { mountRootfs, unmountRootfs } from './rootfs.js';
import { processStart, stillRunning } from './runtime.js';
import { resolveInRoot, resolveUser, runAsOf } from './user.js';

const propagationOption = ['rprivate', 'rslave', 'rshared'];
/** Per stream: stdout and stderr together stay under the 16 MiB message limit of the kubelet's CRI client. */
const maxExecOutput = 7 * 1024 * 1024;

/** The kubelet's rule: CRI command replaces the entrypoint, CRI args replace the image's cmd. */
export function processArgs(command: string[], args: string[], entrypoint: string[], cmd: string[]): string[] {
  if (command.length > 0) return [...command, ...args];
  if (args.length > 0) return [...entrypoint, ...args];
  return [...entrypoint, ...cmd];
}

/** Image env then CRI env; a later value for a name replaces the earlier one in place. */
export function mergeEnv(image: string[], cri: { key: string; value: string }[]): string[] {
  const out = new Map<string, string>();
  for (const e of image) {
    const i = e.indexOf('=');
    out.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
  }
  for (const { key, value } of cri) {
    if (key === '' || key.includes('=') || key.includes('\0')) throw new InvalidArgumentError(`environment variable name ${JSON.stringify(key)} is invalid`);
    out.set(key, value);
  }
  return [...out].map(([k, v]) => `${k}=${v}`);
}

/** How long after RemoveContainer's reply its cleanup begins. */
const cleanupDelayMs = 20;

async function deviceSpec(d: criV1.Device): Promise<NonNullable<LinuxSpec['devices']>[number]> {
  if (!isAbsolute(d.hostPath) || !isAbsolute(d.containerPath)) throw new InvalidArgumentError(`device ${d.hostPath} → ${d.containerPath}: paths must be absolute`);
  const st = await stat(d.hostPath).catch(() => undefined);
  if (st === undefined) throw new NotFoundError(`device ${d.hostPath} does not exist`);
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (type === undefined) throw new InvalidArgumentError(`${d.hostPath} is not a device`);
  const rdev = Number(st.rdev);
  const major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return { path: d.containerPath, type, major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

export class Containers {
  private readonly inFlight = new InFlight<criV1.CreateContainerResponse>();


  constructor(
    private readonly ctx: ExecutorContext,
    private readonly pods: Pods,
  ) {}

  get(id: string): ContainerRecord {
    const c = this.ctx.containerRecords.lookup(id, 'container');
    if (c === undefined) throw new NotFoundError(`container ${JSON.stringify(id)} not found`);
    return c;
  }

  private runtime(pod: PodRecord | undefined) {
    return this.ctx.runtimeFor(pod?.runtimeHandler ?? '')!;
  }

  /** CreateContainer; a retry for the same pod, name and attempt gets the container already made or joins the call making it. */
  async create(request: criV1.CreateContainerRequest): Promise<criV1.CreateContainerResponse> {
    const config = request.config;
    if (config === undefined || config.metadata === undefined || config.metadata.name === '') throw new InvalidArgumentError('CreateContainer needs config.metadata.name');
    const pod = this.pods.get(request.podSandboxId);
    const meta = config.metadata;
    return this.inFlight.run(JSON.stringify([pod.id, meta.name, meta.attempt]), async () => {
      const taken = this.ctx.containerRecords.all().find((c) => c.podId === pod.id && c.name === meta.name && c.attempt === meta.attempt);
      if (taken !== undefined) {
        if (taken.image !== (config.image?.image ?? '')) throw new AlreadyExistsError(`container ${meta.name} attempt ${meta.attempt} already exists in pod ${pod.id} as ${taken.id} with another image`);
        return { containerId: taken.id };
      }
      if (!(await this.pods.ready(pod))) throw new FailedPreconditionError(`pod sandbox ${pod.id} is not ready`);
      return this.make(pod, config, meta);
    });
  }

  private async make(pod: PodRecord, config: criV1.ContainerConfig, meta: criV1.ContainerMetadata): Promise<criV1.CreateContainerResponse> {
    const image = await inSpan('container: resolve image', () => this.ctx.images.resolve(config.image?.image ?? ''));
    const linux = config.linux;
    const sc = linux?.securityContext;
    const runAs = runAsOf(sc);
    let logPath = '';
    if (config.logPath !== '') {
      if (pod.logDirectory === '') throw new InvalidArgumentError('log_path is set but the pod has no log_directory');
      const rel = normalize(config.logPath);
      if (isAbsolute(rel) || rel.startsWith('..')) throw new InvalidArgumentError(`log_path ${JSON.stringify(config.logPath)} must stay inside the pod's log directory`);
      logPath = join(pod.logDirectory, rel);
    }
    const id = newId();
    const dir = join(this.ctx.paths.containersDir, id);
    const rootfs = join(dir, 'rootfs');
    const snapshotKey = `ctr-${id}`;
    const undo: (() => Promise<unknown>)[] = [];
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      undo.push(() => rm(dir, { recursive: true, force: true }));
      const upperDir = await inSpan('container: rootfs snapshot', () => mountRootfs(this.ctx, snapshotKey, image.record.topChainId, rootfs));
      undo.push(() => unmountRootfs(this.ctx, snapshotKey, rootfs));
      const imageConfig = image.config.config ?? {};
      const user = await resolveUser(rootfs, {
        ...runAs,
        imageUser: imageConfig.User ?? '',
        extraGids: (sc?.supplementalGroups ?? []).map(Number),
      });
      const args = processArgs(config.command, config.args, imageConfig.Entrypoint ?? [], imageConfig.Cmd ?? []);
      if (args.length === 0) throw new InvalidArgumentError(`no command: the image ${image.name} has no entrypoint or cmd and the request gives none`);
      const env = mergeEnv(imageConfig.Env ?? [], config.envs.map((e) => ({ key: e.key, value: Buffer.from(e.value).toString('utf8') })));
      if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
      if (!env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${pod.hostname}`);
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
      const cwd = config.workingDir || imageConfig.WorkingDir || '/';
      if (!isAbsolute(cwd)) throw new InvalidArgumentError(`working dir ${JSON.stringify(cwd)} must be absolute`);

      const mounts: MountSpec[] = [];
      const targets = new Set<string>();
      const volumes: { key: string; target: string }[] = [];
      for (const m of config.mounts) {
        if (!isAbsolute(m.containerPath)) throw new InvalidArgumentError(`mount target ${JSON.stringify(m.containerPath)} must be absolute`);
        if (m.image !== undefined && m.image.image !== '') {
          // An image volume: the image's filesystem, read-only, optionally a sub path of it.
          const volumeImage = await this.ctx.images.resolve(m.image.image);
          const volume = { key: `vol-${id}-${volumes.length}`, target: join(dir, 'volumes', String(volumes.length)) };
          await mountRootfs(this.ctx, volume.key, volumeImage.record.topChainId, volume.target, true);
          volumes.push(volume);
          undo.push(() => unmountRootfs(this.ctx, volume.key, volume.target));
          const source = m.imageSubPath === '' ? volume.target : await resolveInRoot(volume.target, m.imageSubPath);
          if ((await stat(source).catch(() => undefined)) === undefined) throw new InvalidArgumentError(`image volume ${m.image.image} has no ${m.imageSubPath}`);
          mounts.push({ destination: m.containerPath, type: 'bind', source, options: ['rbind', 'rprivate', 'ro'] });
          targets.add(normalize(m.containerPath));
          continue;
        }
        if (!isAbsolute(m.hostPath)) throw new InvalidArgumentError(`mount source ${JSON.stringify(m.hostPath)} must be absolute`);
        // Never created: a missing source (or one only reachable through a dangling link) is the caller's error.
        const st = await stat(m.hostPath).catch(() => undefined);
        if (st === undefined) throw new InvalidArgumentError(`mount source ${m.hostPath} does not exist`);
        const options = ['rbind', propagationOption[m.propagation] ?? 'rprivate', ...(m.readonly ? ['ro'] : [])];
        mounts.push({ destination: m.containerPath, type: 'bind', source: m.hostPath, options });
        targets.add(normalize(m.containerPath));
      }
      const podFile = (name: string, target: string) => {
        if (!targets.has(target)) mounts.push({ destination: target, type: 'bind', source: join(pod.dir, name), options: ['rbind', 'rprivate', ...(sc?.readonlyRootfs ? ['ro'] : [])] });
      };
      podFile('hosts', '/etc/hosts');
      podFile('resolv.conf', '/etc/resolv.conf');
      if (!pod.hostNetwork) podFile('hostname', '/etc/hostname');
      if (!targets.has('/dev/shm')) {
        mounts.push(pod.hostIpc ? { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] } : { destination: '/dev/shm', type: 'bind', source: join(pod.dir, 'shm'), options: ['rbind', 'rprivate'] });
      }

      const nsMode = sc?.namespaceOptions;
      const namespaces: { type: string; path?: string }[] = [{ type: 'mount' }, ...podNamespaces(pod)];
      const pidMode = nsMode?.pid ?? pod.pidMode;
      if (pidMode === 0) namespaces.push({ type: 'pid', path: `/proc/${pod.pausePid}/ns/pid` });
      else if (pidMode === 1) namespaces.push({ type: 'pid' });
      else if (pidMode === 3) {
        const target = this.get(nsMode?.targetId ?? '');
        if (target.podId !== pod.id) throw new InvalidArgumentError(`target container ${target.id} is not in pod ${pod.id}`);
        namespaces.push({ type: 'pid', path: `/proc/${target.pid}/ns/pid` });
      }

      // A Localhost seccomp profile is a JSON file on the node, read now: its content goes into config.json.
      const localhost = localhostRef(sc?.seccomp, sc?.seccompProfilePath ?? '');
      let localhostProfile: unknown;
      if (localhost !== undefined && !(sc?.privileged ?? false)) {
        if (!isAbsolute(localhost)) throw new InvalidArgumentError(`seccomp profile ${JSON.stringify(localhost)} must be an absolute path`);
        const text = await readFile(localhost, 'utf8').catch(() => {
          throw new NotFoundError(`seccomp profile ${localhost} not found`);
        });
        try {
          localhostProfile = JSON.parse(text) as unknown;
        } catch {
          throw new InvalidArgumentError(`seccomp profile ${localhost} is not valid JSON`);
        }
      }
      const devices = await Promise.all(config.devices.map(deviceSpec));
      const privileged = sc?.privileged ?? false;
      const caps = capabilities(sc?.capabilities?.addCapabilities ?? [], sc?.capabilities?.dropCapabilities ?? [], privileged, this.ctx.allCapabilities);
      const spec = buildSpec({
        args,
        env,
        cwd,
        user,
        terminal: config.tty,
        namespaces,
        cgroupsPath: cgroupsPath(this.ctx, pod.cgroupParent, id),
        readonlyRootfs: sc?.readonlyRootfs ?? false,
        mounts,
        privileged,
        capabilities: caps,
        noNewPrivileges: sc?.noNewPrivs ?? false,
        ...(sc !== undefined && sc.maskedPaths.length > 0 ? { maskedPaths: sc.maskedPaths } : {}),
        ...(sc !== undefined && sc.readonlyPaths.length > 0 ? { readonlyPaths: sc.readonlyPaths } : {}),
        resources: linux?.resources,
        minOomScoreAdj: this.ctx.minOomScoreAdj,
        seccomp: sc?.seccomp,
        seccompProfilePath: sc?.seccompProfilePath ?? '',
        localhostSeccompProfile: localhostProfile,
        devices,
        ...(() => {
          const name = apparmorProfile(sc?.apparmor, sc?.apparmorProfile ?? '', this.ctx.hostHasAppArmor);
          return name === undefined ? {} : { apparmorProfile: name };
        })(),
      });
      await writeFile(join(dir, 'config.json'), JSON.stringify(spec));
      if (logPath === '') logPath = join(dir, 'container.log');
      await mkdir(dirname(logPath), { recursive: true, mode: 0o755 });
      const record: ContainerRecord = {
        id,
        podId: pod.id,
        name: meta.name,
        attempt: meta.attempt,
        labels: config.labels,
        annotations: config.annotations,
        image: config.image?.image ?? '',
        imageId: image.record.id,
        imageName: image.name,
        createdAt: nowNanos(),
        startedAt: '0',
        finishedAt: '0',
        exitCode: 0,
        reason: '',
        message: '',
        state: 'created',
        logPath,
        mounts: config.mounts.map((m) => ({ containerPath: m.containerPath, hostPath: m.hostPath, readonly: m.readonly, propagation: m.propagation })),
        dir,
        snapshotKey,
        ...(upperDir === undefined ? {} : { upperDir }),
        volumes,
        stopSignal: imageConfig.StopSignal ?? '',
        pid: 0,
        tty: config.tty,
        stdin: config.stdin,
        stdinOnce: config.stdinOnce,
        process: { env, cwd, user: spec.process.user, capabilities: spec.process.capabilities, noNewPrivileges: spec.process.noNewPrivileges ?? false },
        resources: spec.linux.resources,
      };
      const runtime = this.runtime(pod);
      record.pid = await inSpan('container: conmon + runc create', () => runtime.createMonitored(id, dir, { logPath, name: `${meta.name}_${pod.name}_${pod.namespace}_${pod.uid}_${meta.attempt}`, stdin: config.stdin, stdinOnce: config.stdinOnce, tty: config.tty }));
      undo.push(() => runtime.delete(id));
      const conmonPid = Number((await readFile(join(dir, 'conmon.pid'), 'utf8').catch(() => '0')).trim());
      const [conmonStart, pidStart] = await Promise.all([processStart(conmonPid), processStart(record.pid)]);
      if (conmonStart !== undefined) Object.assign(record, { conmonPid, conmonStart });
      if (pidStart !== undefined) record.pidStart = pidStart;
      await inSpan('container: record', () => this.ctx.containerRecords.put(record));
      this.ctx.emit(id, pod.id, 'created');
      return { containerId: id };
    } catch (err) {
      for (const step of undo.reverse()) await step().catch((e: unknown) => this.ctx.logger.warn({ err: e, container: id }, 'cleanup after a failed CreateContainer'));
      throw err;
    }
  }

  async start(id: string): Promise<void> {
    const c = this.get(id);
    await this.refresh(c);
    if (c.state !== 'created') throw new FailedPreconditionError(`container ${c.id} is ${c.state}, not created`);
    await inSpan('container: runc start', () => this.runtime(this.ctx.pods.get(c.podId)).start(c.id));
    // A process that ends at once may have been seen exiting (the exit watcher) before this line.
    if (c.state === 'created') {
      c.state = 'running';
      c.startedAt = nowNanos();
    }
    await this.ctx.containerRecords.put(c);
    this.ctx.emit(c.id, c.podId, 'started');
  }

  private readonly refreshing = new InFlight<ContainerRecord>();
  /** Whether the exit watcher runs: while it does, a status needs no look at conmon or the runtime. */
  private exitsWatched = false;

  /** Brings a record up to date with conmon's exit file and the runtime (one check at a time per container, so an exit is published once). */
  refresh(c: ContainerRecord): Promise<ContainerRecord> {
    // A check in progress is joined even when it has already marked the exit: its record write is part of it.
    return this.refreshing.run(c.id, () => (c.state === 'exited' ? Promise.resolve(c) : this.check(c)));
  }

  private async check(c: ContainerRecord): Promise<ContainerRecord> {
    if (c.state === 'exited') return c;
    const runtime = this.runtime(this.ctx.pods.get(c.podId));
    let exit = await runtime.exitCode(c.id);
    // No exit file: conmon still watching means the container has not exited.
    if (exit === undefined && c.conmonPid !== undefined && (await stillRunning(c.conmonPid, c.conmonStart))) return c;
    // conmon writes the exit file before it exits: look again now that it is gone.
    exit ??= await runtime.exitCode(c.id);
    if (exit === undefined) {
      // Without conmon, the runtime's word; with neither, the node rebooted or conmon was killed.
      const state = await runtime.state(c.id);
      if (state !== undefined && state.status !== 'stopped') return c;
      Object.assign(c, { state: 'exited', exitCode: 255, reason: 'Unknown', message: 'the container was lost (no runtime state, no exit code)', finishedAt: nowNanos() });
    } else {
      const oom = await lstat(join(c.dir, 'persist', 'oom')).then(() => true, () => false);
      Object.assign(c, {
        state: 'exited',
        exitCode: exit.code,
        finishedAt: (BigInt(exit.at.getTime()) * 1_000_000n).toString(),
        reason: oom ? 'OOMKilled' : exit.code === 0 ? 'Completed' : 'Error',
      });
      if (c.startedAt === '0') c.startedAt = c.finishedAt;
    }
    await this.ctx.containerRecords.put(c);
    this.ctx.emit(c.id, c.podId, 'stopped');
    void this.tearDown(c).catch((err: unknown) => this.ctx.logger.warn({ err, container: c.id }, 'tearing down an exited container'));
    return c;
  }

  private readonly tearingDown = new InFlight<void>();

  /**
   * What an exited container holds is let go as soon as it exits, as the
   * kubelet may remove it much later: the runtime's state (and with it the
   * cgroup) and the rootfs and volume mounts. The snapshots, with what the
   * container wrote, stay until RemoveContainer.
   */
  private tearDown(c: ContainerRecord): Promise<void> {
    if (c.tornDown === true || c.state !== 'exited') return Promise.resolve();
    return this.tearingDown.run(c.id, () =>
      inSpan('container: tear down', async () => {
        await inSpan('container: runc delete', () => this.runtime(this.ctx.pods.get(c.podId)).delete(c.id));
        await unmount(join(c.dir, 'rootfs'));
        for (const v of c.volumes ?? []) await unmount(v.target);
        c.tornDown = true;
        if (this.ctx.containerRecords.get(c.id) === c) await this.ctx.containerRecords.put(c);
      }),
    );
  }

  /** Waits up to `ms` for the container's exit (conmon's exit file, or conmon gone). */
  private async waitExit(c: ContainerRecord, ms: number): Promise<boolean> {
    const runtime = this.runtime(this.ctx.pods.get(c.podId));
    const until = Date.now() + ms;
    for (;;) {
      if ((await runtime.exitCode(c.id)) !== undefined) return true;
      if (c.conmonPid === undefined || !(await stillRunning(c.conmonPid, c.conmonStart))) {
        const state = c.conmonPid === undefined ? await runtime.state(c.id) : undefined;
        if (state === undefined || state.status === 'stopped') return true;
      }
      if (Date.now() > until) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * The stop signal goes to the container's process, as `runc kill` sends it,
   * but straight from here: the process is known by pid and start time, so
   * no runtime process is needed. Without a recorded start time, runc does it.
   */
  private async signal(c: ContainerRecord, name: string): Promise<void> {
    const signal = (name.startsWith('SIG') ? name : `SIG${name}`).toUpperCase() as NodeJS.Signals;
    if (c.pidStart !== undefined && c.pid > 0 && signal in osConstants.signals) {
      signalProcess(c.pid, c.pidStart, signal);
      return;
    }
    await this.runtime(this.ctx.pods.get(c.podId)).kill(c.id, name).catch(() => undefined);
  }

  /** StopContainer of the container with the full id `id` (a prefix is resolved first: `RecordStore.idOf`); one that is gone is stopped. */
  async stop(id: string, timeoutSeconds: number): Promise<void> {
    const c = this.ctx.containerRecords.get(id);
    if (c === undefined) return;
    await this.refresh(c);
    if (c.state === 'exited') return;
    const runtime = this.runtime(this.ctx.pods.get(c.podId));
    if (c.state === 'created') {
      // Never started: there is nothing to signal gracefully.
      await runtime.kill(c.id, 'KILL').catch(() => undefined);
    } else if (timeoutSeconds > 0) {
      await this.signal(c, c.stopSignal || 'TERM');
      if (await this.waitExit(c, timeoutSeconds * 1000)) {
        await this.refresh(c);
        return;
      }
    }
    await runtime.kill(c.id, 'KILL', true).catch(() => undefined);
    await this.waitExit(c, 10_000);
    await this.refresh(c);
  }

  /**
   * RemoveContainer. The container is gone from every answer once its
   * record has moved to the removals (one rename): the reply does not wait
   * for the rest (its runtime state, mounts, snapshots and directory), which
   * goes on here and, after a crash, at the next start. RemovePodSandbox
   * waits for all of it.
   */
  async remove(id: string): Promise<void> {
    const c = this.ctx.containerRecords.get(id);
    if (c === undefined) return; // idempotent; `id` is a full id (RecordStore.idOf)
    await this.stop(c.id, 0);
    if (this.ctx.containerRecords.get(c.id) !== c) return; // removed meanwhile by another call
    await this.ctx.containerRecords.moveTo(c.id, this.ctx.containerRemovals);
    this.ctx.emit(c.id, c.podId, 'deleted');
    // The cleanup starts once the reply is on its way, so it does not compete with it;
    // RemovePodSandbox and a restart run it themselves if it has not begun.
    setTimeout(() => {
      if (this.ctx.containerRemovals.get(c.id) === c) void this.finishRemoval(c).catch(() => undefined);
    }, cleanupDelayMs).unref();
  }

  private readonly removing = new InFlight<void>();

  /** The cleanup of a removed container; failures are logged and tried again a minute later. */
  private finishRemoval(c: ContainerRecord): Promise<void> {
    return this.removing.run(c.id, async () => {
      try {
        await inSpan('container: clean up', async () => {
          await this.tearDown(c);
          await unmountRootfs(this.ctx, c.snapshotKey, join(c.dir, 'rootfs'));
          for (const v of c.volumes ?? []) await unmountRootfs(this.ctx, v.key, v.target);
          await rm(join(this.runtime(this.ctx.pods.get(c.podId)).paths.exitDir, c.id), { force: true });
          await rm(c.dir, { recursive: true, force: true });
          await this.ctx.containerRemovals.delete(c.id);
        });
      } catch (err) {
        this.ctx.logger.warn({ err, container: c.id }, 'cleaning up a removed container; trying again in a minute');
        setTimeout(() => void this.finishRemoval(c).catch(() => undefined), 60_000).unref();
        throw err;
      }
    });
  }

  /**
   * Watches conmon's exit files: a container that exits on its own is
   * noticed at once (its record updated, a stopped event published), not
   * only when someone asks for its status.
   */
  watchExits(): () => void {
    const dir = this.runtime(undefined).paths.exitDir;
    const watcher = watch(dir, (_event, name) => {
      const c = name === null ? undefined : this.ctx.containerRecords.get(name);
      if (c !== undefined && c.state !== 'exited') void this.refresh(c).catch((err: unknown) => this.ctx.logger.warn({ err, container: c.id }, 'reading an exit'));
    });
    this.exitsWatched = true;
    watcher.on('error', (err) => {
      this.exitsWatched = false;
      this.ctx.logger.warn({ err, dir }, 'the exit watcher failed: statuses look for exits themselves from now on');
    });
    // A sweep catches what leaves no exit file (conmon killed, a missed notification),
    // and a pod whose pause process died: its sandbox is no longer ready, which is news.
    const deadPods = new Set<string>();
    const sweep = setInterval(() => {
      for (const c of this.ctx.containerRecords.all()) if (c.state !== 'exited') void this.refresh(c).catch(() => undefined);
      for (const id of deadPods) if (!this.ctx.pods.items.has(id)) deadPods.delete(id);
      for (const pod of this.ctx.pods.all()) {
        if (pod.state !== 'ready' || deadPods.has(pod.id)) continue;
        void this.pods.ready(pod).then((ready) => {
          if (ready || deadPods.has(pod.id)) return;
          deadPods.add(pod.id);
          this.ctx.emit(pod.id, pod.id, 'stopped');
        });
      }
    }, 5000);
    sweep.unref();
    return () => {
      this.exitsWatched = false;
      clearInterval(sweep);
      watcher.close();
    };
  }

  /** At start: containers that exited while the executor was down get their exit recorded (and published); removals cut short finish. */
  async recover(): Promise<void> {
    for (const c of this.ctx.containerRemovals.all()) void this.finishRemoval(c).catch(() => undefined);
    for (const c of this.ctx.containerRecords.all()) {
      await this.refresh(c).catch((err: unknown) => this.ctx.logger.warn({ err, container: c.id }, 'recovering a container'));
      // An exit recorded before a crash may not have been torn down yet.
      await this.tearDown(c).catch((err: unknown) => this.ctx.logger.warn({ err, container: c.id }, 'tearing down an exited container'));
    }
  }

  /** Stops every container of the pod, all at once, and lets go of what they held (their cgroups go before the pod's). */
  async stopAllOf(podId: string): Promise<void> {
    const mine = this.ctx.containerRecords.all().filter((c) => c.podId === podId);
    await Promise.all(mine.map(async (c) => {
      await this.stop(c.id, 0);
      await this.tearDown(c);
    }));
  }

  /** Removes every container of the pod and waits for all of their cleanup, earlier removals' included. */
  async removeAllOf(podId: string): Promise<void> {
    await Promise.all(this.ctx.containerRecords.all().filter((c) => c.podId === podId).map((c) => this.remove(c.id)));
    await Promise.all(this.ctx.containerRemovals.all().filter((c) => c.podId === podId).map((c) => this.finishRemoval(c)));
  }

  private criState(c: ContainerRecord): criV1.ContainerState {
    return c.state === 'created' ? 0 : c.state === 'running' ? 1 : 2;
  }

  async status(id: string, verbose: boolean): Promise<criV1.ContainerStatusResponse> {
    // As for List, the exit watcher and the sweep keep the record current; a verbose answer looks again itself.
    const c = verbose || !this.exitsWatched ? await this.refresh(this.get(id)) : this.get(id);
    return this.statusOf(c, verbose);
  }

  /** The status a record shows now, without looking at the process. */
  statusOf(c: ContainerRecord, verbose: boolean): criV1.ContainerStatusResponse {
    return {
      status: {
        id: c.id,
        metadata: { name: c.name, attempt: c.attempt },
        state: this.criState(c),
        createdAt: BigInt(c.createdAt),
        startedAt: BigInt(c.startedAt),
        finishedAt: BigInt(c.finishedAt),
        exitCode: c.exitCode,
        image: { image: c.imageName, annotations: {}, userSpecifiedImage: c.image, runtimeHandler: '', imageRef: c.imageId },
        imageRef: c.imageId,
        reason: c.reason,
        message: c.message,
        labels: c.labels,
        annotations: c.annotations,
        mounts: c.mounts.map((m) => ({ ...m, selinuxRelabel: false, uidMappings: [], gidMappings: [], recursiveReadOnly: false, image: undefined, imageSubPath: '', mountOptions: [] })),
        logPath: c.logPath,
        resources: undefined,
        user: { linux: { uid: BigInt(c.process.user.uid), gid: BigInt(c.process.user.gid), supplementalGroups: (c.process.user.additionalGids ?? []).map(BigInt) } },
        imageId: c.imageId,
        stopSignal: 0,
      },
      info: verbose ? { info: JSON.stringify({ pid: c.pid, sandboxID: c.podId, bundle: c.dir, process: c.process, resources: c.resources ?? null }) } : {},
    };
  }

  async list(filter: criV1.ContainerFilter | undefined): Promise<criV1.Container[]> {
    // The records are kept current by the exit watcher and the sweep: listing reads no files.
    const all = [...this.ctx.containerRecords.all()].map((c) => ({
      id: c.id,
      podSandboxId: c.podId,
      metadata: { name: c.name, attempt: c.attempt },
      image: { image: c.imageName, annotations: {}, userSpecifiedImage: c.image, runtimeHandler: '', imageRef: c.imageId },
      imageRef: c.imageId,
      state: this.criState(c),
      createdAt: BigInt(c.createdAt),
      labels: c.labels,
      annotations: c.annotations,
      imageId: c.imageId,
    }));
    return filterContainers(all, filter);
  }

  async updateResources(request: criV1.UpdateContainerResourcesRequest): Promise<void> {
    const c = await this.refresh(this.get(request.containerId));
    if (c.state === 'exited') throw new FailedPreconditionError(`container ${c.id} has exited`);
    if (request.linux === undefined) return;
    const resources = resourcesSpec(request.linux);
    await this.runtime(this.ctx.pods.get(c.podId)).update(c.id, resources, join(this.ctx.paths.scratchDir, newId()));
    c.resources = { ...(c.resources ?? {}), ...resources };
    await this.ctx.containerRecords.put(c);
  }

  /**
   * Asks conmon to reopen the log file (after the kubelet rotated it),
   * through its control FIFO, and returns once the new file is in place: the
   * kubelet (and critest) look for it as soon as the call returns, as CRI-O
   * waits for conmon's new file before it answers. conmon writes the new file
   * aside and renames it over the path, so the path's inode changes.
   */
  async reopenLog(id: string): Promise<void> {
    const c = await this.refresh(this.get(id));
    if (c.state !== 'running') throw new FailedPreconditionError(`container ${c.id} is not running`);
    const before = await inodeOf(c.logPath);
    await conmonControl(c.dir, '2 0 0\n').catch((err: unknown) => {
      throw new FailedPreconditionError(`container ${c.id}: conmon's control pipe is not open`, { cause: err });
    });
    for (const deadline = Date.now() + reopenTimeoutMs; (await inodeOf(c.logPath)) === before; ) {
      if (Date.now() > deadline) throw new DeadlineExceededError(`container ${c.id}: conmon did not reopen ${c.logPath} within ${reopenTimeoutMs} ms`);
      await sleep(5);
    }
  }

  async execSync(request: criV1.ExecSyncRequest): Promise<criV1.ExecSyncResponse> {
    const c = await this.refresh(this.get(request.containerId));
    if (c.state !== 'running') throw new FailedPreconditionError(`container ${c.id} is not running`);
    if (request.cmd.length === 0) throw new InvalidArgumentError('ExecSync needs a command');
    const timeout = Number(request.timeout);
    if (timeout < 0) throw new InvalidArgumentError('timeout must not be negative');
    const spec = { terminal: false, args: request.cmd, ...c.process };
    const result = await this.runtime(this.ctx.pods.get(c.podId)).exec(c.id, spec, join(this.ctx.paths.scratchDir, newId()), timeout * 1000, maxExecOutput);
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
  }
}

/** How long ReopenContainerLog waits for conmon's new log file. */
const reopenTimeoutMs = 5000;

/** The inode at `path`, or undefined when there is no file there. */
async function inodeOf(path: string): Promise<number | undefined> {
  return stat(path).then(
    (st) => st.ino,
    () => undefined,
  );
}
