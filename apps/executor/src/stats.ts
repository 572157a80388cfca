// Container and pod statistics from the cgroup filesystem (v1 or v2), a
// walk of each writable layer's directory, and the pod network namespace's
// /proc/net/dev.
import { readFileSync } from 'node:fs';
import { diskUsage } from '@berth/native';
import { join } from 'node:path';
import type { criV1 } from '@berth/proto';
import type { ExecutorContext } from './context.js';
import type { Containers } from './containers.js';
import { cgroupsPath, type Pods } from './pods.js';
import type { ContainerRecord, PodRecord } from './records.js';

const u64 = (value: number | bigint | undefined) => (value === undefined ? undefined : { value: BigInt(value) });
const now = () => BigInt(Date.now()) * 1_000_000n;

// cgroupfs and procfs files are read at once: they never wait on a disk, and
// through the thread pool each small read is four queued round trips.
function readNumber(path: string): bigint | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^\d+$/.test(text) ? BigInt(text) : undefined;
  } catch {
    return undefined;
  }
}

function readKeyed(path: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [k, v] = line.split(' ');
      if (k && v && /^\d+$/.test(v)) out.set(k, BigInt(v));
    }
  } catch {
    // absent: no values
  }
  return out;
}

/** The lines of a file (the processes of a cgroup.procs), undefined when it cannot be read. */
function countLines(path: string): bigint | undefined {
  try {
    return BigInt(readFileSync(path, 'utf8').split('\n').filter(Boolean).length);
  } catch {
    return undefined;
  }
}

interface Sample {
  cpuNanos?: bigint | undefined;
  memoryUsage?: bigint | undefined;
  workingSet?: bigint | undefined;
  rss?: bigint | undefined;
  pageFaults?: bigint | undefined;
  majorPageFaults?: bigint | undefined;
  processes?: bigint | undefined;
}

/** Stats read at once for this many containers or pods: their cgroup files and store calls overlap. */
const statsConcurrency = 16;

/** `fn` over `items`, at most statsConcurrency at a time, results in the items' order. */
async function concurrently<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(statsConcurrency, items.length) }, worker));
  return out;
}

export class CgroupReader {
  constructor(
    private readonly version: 'v1' | 'v2',
    private readonly root = '/sys/fs/cgroup',
  ) {}

  /** The cgroup directory of a runtime cgroupsPath (cgroupfs form, or systemd's slice:prefix:name). */
  private relative(path: string): string {
    const parts = path.split(':');
    if (parts.length === 3) return join('/', parts[0] ?? '', `${parts[1]}-${parts[2]}.scope`);
    return path;
  }

  sample(path: string): Sample {
    const rel = this.relative(path);
    if (this.version === 'v2') {
      const dir = join(this.root, rel);
      const cpu = readKeyed(join(dir, 'cpu.stat'));
      const mem = readKeyed(join(dir, 'memory.stat'));
      const usage = readNumber(join(dir, 'memory.current'));
      const inactive = mem.get('inactive_file') ?? 0n;
      const procs = countLines(join(dir, 'cgroup.procs'));
      return {
        ...(cpu.has('usage_usec') ? { cpuNanos: cpu.get('usage_usec')! * 1000n } : {}),
        ...(usage === undefined ? {} : { memoryUsage: usage, workingSet: usage > inactive ? usage - inactive : 0n }),
        ...(mem.has('anon') ? { rss: mem.get('anon')! } : {}),
        ...(mem.has('pgfault') ? { pageFaults: mem.get('pgfault')! } : {}),
        ...(mem.has('pgmajfault') ? { majorPageFaults: mem.get('pgmajfault')! } : {}),
        ...(procs === undefined ? {} : { processes: procs }),
      };
    }
    const cpuNanos = readNumber(join(this.root, 'cpuacct', rel, 'cpuacct.usage'));
    const memDir = join(this.root, 'memory', rel);
    const usage = readNumber(join(memDir, 'memory.usage_in_bytes'));
    const mem = readKeyed(join(memDir, 'memory.stat'));
    const inactive = mem.get('total_inactive_file') ?? 0n;
    const procs = countLines(join(this.root, 'pids', rel, 'cgroup.procs'));
    return {
      ...(cpuNanos === undefined ? {} : { cpuNanos }),
      ...(usage === undefined ? {} : { memoryUsage: usage, workingSet: usage > inactive ? usage - inactive : 0n }),
      ...(mem.has('total_rss') ? { rss: mem.get('total_rss')! } : {}),
      ...(mem.has('total_pgfault') ? { pageFaults: mem.get('total_pgfault')! } : {}),
      ...(mem.has('total_pgmajfault') ? { majorPageFaults: mem.get('total_pgmajfault')! } : {}),
      ...(procs === undefined ? {} : { processes: procs }),
    };
  }
}

const add = (a: bigint | undefined, b: bigint | undefined) => (a === undefined ? b : b === undefined ? a : a + b);

export class Stats {
  /** The previous CPU sample per cgroup, for usage_nano_cores. */
  private readonly lastCpu = new Map<string, { at: bigint; nanos: bigint }>();

  constructor(
    private readonly ctx: ExecutorContext,
    private readonly pods: Pods,
    private readonly containers: Containers,
    private readonly cgroups: CgroupReader,
  ) {}

  private cpu(key: string, s: Sample, at: bigint): criV1.CpuUsage {
    let nanoCores: bigint | undefined;
    const prev = this.lastCpu.get(key);
    if (s.cpuNanos !== undefined) {
      if (prev !== undefined && at > prev.at && s.cpuNanos >= prev.nanos) nanoCores = ((s.cpuNanos - prev.nanos) * 1_000_000_000n) / (at - prev.at);
      this.lastCpu.set(key, { at, nanos: s.cpuNanos });
    }
    return { timestamp: at, usageCoreNanoSeconds: u64(s.cpuNanos), usageNanoCores: u64(nanoCores), psi: undefined };
  }

  private memory(s: Sample, at: bigint): criV1.MemoryUsage {
    return { timestamp: at, workingSetBytes: u64(s.workingSet), availableBytes: undefined, usageBytes: u64(s.memoryUsage), rssBytes: u64(s.rss), pageFaults: u64(s.pageFaults), majorPageFaults: u64(s.majorPageFaults), psi: undefined };
  }

  private sampleOf(c: ContainerRecord, pod: PodRecord | undefined): Sample {
    return c.state === 'exited' ? {} : this.cgroups.sample(cgroupsPath(this.ctx, pod?.cgroupParent ?? '', c.id));
  }

  async container(c: ContainerRecord, pod: PodRecord | undefined): Promise<criV1.ContainerStats> {
    return this.statsOf(c, this.sampleOf(c, pod));
  }

  private async statsOf(c: ContainerRecord, s: Sample): Promise<criV1.ContainerStats> {
    const at = now();
    // The writable layer is walked here, in one call on the thread pool, rather than asked of the store (a round trip per container).
    const usage = await (c.upperDir === undefined ? this.ctx.store.snapshots.usage(c.snapshotKey) : diskUsage(c.upperDir)).catch(() => undefined);
    const mountpoint = join(this.ctx.config.stateDir, 'snapshots');
    return {
      attributes: { id: c.id, metadata: { name: c.name, attempt: c.attempt }, labels: c.labels, annotations: c.annotations },
      cpu: this.cpu(c.id, s, at),
      memory: this.memory(s, at),
      writableLayer: { timestamp: at, fsId: { mountpoint }, usedBytes: u64(usage?.bytes), inodesUsed: u64(usage?.inodes) },
      swap: undefined,
      io: undefined,
    };
  }

  async listContainers(filter: criV1.ContainerStatsFilter | undefined): Promise<criV1.ContainerStats[]> {
    const listed = await this.containers.list({ id: filter?.id ?? '', podSandboxId: filter?.podSandboxId ?? '', labelSelector: filter?.labelSelector ?? {}, state: undefined });
    // Stats are for running containers.
    const records = listed.filter((c) => c.state === 1).flatMap((c) => this.ctx.containerRecords.get(c.id) ?? []);
    return concurrently(records, (record) => this.container(record, this.ctx.pods.get(record.podId)));
  }

  private async network(pod: PodRecord, at: bigint): Promise<criV1.NetworkUsage | undefined> {
    if (pod.hostNetwork || pod.pausePid <= 0) return undefined;
    let text: string;
    try {
      text = readFileSync(`/proc/${pod.pausePid}/net/dev`, 'utf8');
    } catch {
      return undefined;
    }
    const interfaces: criV1.NetworkInterfaceUsage[] = [];
    for (const line of text.split('\n').slice(2)) {
      const [name, rest] = line.split(':');
      if (!name || rest === undefined || name.trim() === 'lo') continue;
      const f = rest.trim().split(/\s+/).map((x) => BigInt(x));
      interfaces.push({ name: name.trim(), rxBytes: u64(f[0]), rxErrors: u64(f[2]), txBytes: u64(f[8]), txErrors: u64(f[10]) });
    }
    return { timestamp: at, defaultInterface: interfaces.find((i) => i.name === 'eth0') ?? interfaces[0], interfaces };
  }

  async pod(pod: PodRecord): Promise<criV1.PodSandboxStats> {
    const at = now();
    const pause = (await this.pods.ready(pod)) ? this.cgroups.sample(cgroupsPath(this.ctx, pod.cgroupParent, pod.id)) : {};
    const total: Sample = { ...pause };
    // One cgroup sample per container serves both its own stats and the pod's sums.
    const containers: criV1.ContainerStats[] = [];
    for (const c of this.ctx.containerRecords.all()) {
      if (c.podId !== pod.id || c.state === 'exited') continue;
      const s = this.sampleOf(c, pod);
      if (c.state === 'running') containers.push(await this.statsOf(c, s));
      total.cpuNanos = add(total.cpuNanos, s.cpuNanos);
      total.memoryUsage = add(total.memoryUsage, s.memoryUsage);
      total.workingSet = add(total.workingSet, s.workingSet);
      total.rss = add(total.rss, s.rss);
      total.pageFaults = add(total.pageFaults, s.pageFaults);
      total.majorPageFaults = add(total.majorPageFaults, s.majorPageFaults);
      total.processes = add(total.processes, s.processes);
    }
    return {
      attributes: { id: pod.id, metadata: { name: pod.name, uid: pod.uid, namespace: pod.namespace, attempt: pod.attempt }, labels: pod.labels, annotations: pod.annotations },
      linux: {
        cpu: this.cpu(`pod-${pod.id}`, total, at),
        memory: this.memory(total, at),
        network: await this.network(pod, at),
        process: { timestamp: at, processCount: u64(total.processes) },
        containers,
        io: undefined,
      },
      windows: undefined,
    };
  }

  async listPods(filter: criV1.PodSandboxStatsFilter | undefined): Promise<criV1.PodSandboxStats[]> {
    const listed = await this.pods.list({ id: filter?.id ?? '', state: { state: 0 }, labelSelector: filter?.labelSelector ?? {} });
    return concurrently(
      listed.flatMap((p) => this.ctx.pods.get(p.id) ?? []),
      (pod) => this.pod(pod),
    );
  }
}
