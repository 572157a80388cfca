// OCI runtime spec (config.json) for pod sandboxes and containers, from the
// CRI request and the image config. Defaults follow what the kubelet
// expects of a runtime: a default capability set, masked and read-only
// /proc paths, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, cgroups.
import { InternalError, InvalidArgumentError } from '@berth/errors';
import type { criV1 } from '@berth/proto';
import { defaultSeccompProfile } from './seccomp.js';

export type Spec = Record<string, unknown> & { process: ProcessSpec; linux: LinuxSpec; mounts: MountSpec[] };
export interface ProcessSpec {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
  rlimits?: { type: string; hard: number; soft: number }[];
}
export interface MountSpec {
  destination: string;
  type: string;
  source: string;
  options: string[];
}
export interface LinuxSpec {
  namespaces: { type: string; path?: string }[];
  resources: Record<string, unknown>;
  cgroupsPath: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  devices?: { path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }[];
  seccomp?: unknown;
  sysctl?: Record<string, string>;
  rootfsPropagation?: string;
}

/** The capabilities a container gets unless it adds or drops some (the set runtimes agree on). */
export const defaultCapabilities = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Linux capability names by number (capability.h), as far as runc knows them. */
const capabilityNames = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/**
 * The capabilities in a process's bounding set, from the text of
 * /proc/<pid>/status (its `CapBnd:` hex mask); bits with no name here are
 * left out. The runtime's bounding set is all runc, started by it, can grant
 * a container: a privileged container and `ALL` get this set, not every
 * capability the kernel knows, since on a host (or in a container) without
 * some of them runc fails with `unable to apply caps`. containerd grants its
 * own effective set (cap.Current); for a runtime running as root the two are
 * the same.
 */
export function boundingCapabilities(procStatus: string): string[] {
  const hex = /^CapBnd:\s*([0-9a-fA-F]+)$/m.exec(procStatus)?.[1];
  if (hex === undefined) throw new InternalError('the process status has no CapBnd line');
  const mask = BigInt(`0x${hex}`);
  return capabilityNames.filter((_, bit) => ((mask >> BigInt(bit)) & 1n) === 1n);
}

const defaultMaskedPaths = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'];
const defaultReadonlyPaths = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function capName(name: string): string {
  const upper = name.toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!/^CAP_[A-Z_]+$/.test(full)) throw new InvalidArgumentError(`unknown capability ${JSON.stringify(name)}`);
  return full;
}

/**
 * The capability set after the CRI's add and drop lists (`ALL` on either side
 * as Kubernetes means it). `all` is what a privileged container or an added
 * `ALL` gets: the runtime's bounding set (boundingCapabilities).
 */
export function capabilities(add: string[], drop: string[], privileged: boolean, all: readonly string[]): string[] {
  if (privileged) return [...all];
  const dropAll = drop.some((d) => d.toUpperCase() === 'ALL');
  const addAll = add.some((a) => a.toUpperCase() === 'ALL');
  let set = new Set(dropAll ? [] : defaultCapabilities);
  if (addAll) set = new Set(all);
  for (const a of add) if (a.toUpperCase() !== 'ALL') set.add(capName(a));
  if (!dropAll) for (const d of drop) set.delete(capName(d));
  return [...set];
}

function baseMounts(): MountSpec[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
}

export interface SpecInput {
  hostname?: string;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  terminal: boolean;
  namespaces: { type: string; path?: string }[];
  cgroupsPath: string;
  readonlyRootfs: boolean;
  /** The root filesystem, absolute or relative to the bundle (default `rootfs`). */
  rootPath?: string;
  mounts: MountSpec[];
  privileged: boolean;
  capabilities: string[];
  noNewPrivileges: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  resources?: criV1.LinuxContainerResources | undefined;
  /** The executor's own oom_score_adj: a container may not go below it (no CAP_SYS_RESOURCE needed to keep it). */
  minOomScoreAdj: number;
  seccomp?: criV1.SecurityProfile | undefined;
  seccompProfilePath?: string;
  /** The content of the Localhost seccomp profile the request names (read by the caller). */
  localhostSeccompProfile?: unknown;
  sysctls?: Record<string, string>;
  devices?: LinuxSpec['devices'];
  /** An AppArmor profile (loaded on the host) to confine the process with. */
  apparmorProfile?: string;
}

export function resourcesSpec(r: criV1.LinuxContainerResources | undefined): Record<string, unknown> {
  if (r === undefined) return {};
  const cpu: Record<string, unknown> = {};
  if (r.cpuShares > 0n) cpu['shares'] = Number(r.cpuShares);
  if (r.cpuQuota > 0n) cpu['quota'] = Number(r.cpuQuota);
  if (r.cpuPeriod > 0n) cpu['period'] = Number(r.cpuPeriod);
  if (r.cpusetCpus) cpu['cpus'] = r.cpusetCpus;
  if (r.cpusetMems) cpu['mems'] = r.cpusetMems;
  const out: Record<string, unknown> = {};
  if (Object.keys(cpu).length > 0) out['cpu'] = cpu;
  if (r.memoryLimitInBytes > 0n) out['memory'] = { limit: Number(r.memoryLimitInBytes), ...(r.memorySwapLimitInBytes > 0n ? { swap: Number(r.memorySwapLimitInBytes) } : {}) };
  if (r.hugepageLimits.length > 0) out['hugepageLimits'] = r.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: Number(h.limit) }));
  if (Object.keys(r.unified).length > 0) out['unified'] = r.unified;
  return out;
}

/**
 * The Localhost profile a security profile names, through the profile field
 * or the older `localhost/<ref>` string; undefined for any other kind.
 */
export function localhostRef(profile: criV1.SecurityProfile | undefined, legacy: string): string | undefined {
  if (profile !== undefined) return profile.profileType === 2 ? profile.localhostRef : undefined;
  return legacy.startsWith('localhost/') ? legacy.slice('localhost/'.length) : undefined;
}

function seccompFor(input: SpecInput): unknown {
  if (input.privileged) return undefined;
  const profile = input.seccomp;
  const path = input.seccompProfilePath ?? '';
  if (localhostRef(profile, path) !== undefined) return input.localhostSeccompProfile;
  if (profile !== undefined) {
    // RuntimeDefault = 0, Unconfined = 1, Localhost = 2
    return profile.profileType === 1 ? undefined : defaultSeccompProfile();
  }
  if (path === '' || path === 'unconfined') return undefined;
  if (path === 'runtime/default' || path === 'docker/default') return defaultSeccompProfile();
  throw new InvalidArgumentError(`unknown seccomp profile ${JSON.stringify(path)}`);
}

/**
 * The root's propagation that lets the mounts' own work, as containerd sets
 * it: `rshared` when a mount propagates both ways (a mount the container
 * makes under it must reach the host, which runc's default `rslave` root
 * would stop), else `rslave` when one receives the host's mounts.
 */
export function rootfsPropagation(mounts: MountSpec[]): { rootfsPropagation?: string } {
  if (mounts.some((m) => m.options.includes('rshared'))) return { rootfsPropagation: 'rshared' };
  if (mounts.some((m) => m.options.includes('rslave'))) return { rootfsPropagation: 'rslave' };
  return {};
}

export function buildSpec(input: SpecInput): Spec {
  const caps = input.capabilities;
  const oom = input.resources?.oomScoreAdj === undefined ? input.minOomScoreAdj : Math.max(Number(input.resources.oomScoreAdj), input.minOomScoreAdj);
  const seccomp = seccompFor(input);
  const spec: Spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: input.terminal,
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids.length > 0 ? { additionalGids: input.user.additionalGids } : {}) },
      args: input.args,
      env: input.env,
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: input.noNewPrivileges,
      oomScoreAdj: oom,
      ...(input.apparmorProfile === undefined || input.privileged ? {} : { apparmorProfile: input.apparmorProfile }),
    },
    root: { path: input.rootPath ?? 'rootfs', readonly: input.readonlyRootfs },
    ...(input.hostname === undefined ? {} : { hostname: input.hostname }),
    mounts: [...baseMounts().map((m) => (input.privileged && m.destination === '/sys' ? { ...m, options: m.options.filter((o) => o !== 'ro') } : m)), ...input.mounts],
    linux: {
      namespaces: input.namespaces,
      ...rootfsPropagation(input.mounts),
      resources: { devices: [{ allow: input.privileged, access: 'rwm' }], ...resourcesSpec(input.resources) },
      cgroupsPath: input.cgroupsPath,
      ...(input.privileged ? {} : { maskedPaths: input.maskedPaths ?? defaultMaskedPaths, readonlyPaths: input.readonlyPaths ?? defaultReadonlyPaths }),
      ...(seccomp === undefined ? {} : { seccomp }),
      ...(input.sysctls && Object.keys(input.sysctls).length > 0 ? { sysctl: input.sysctls } : {}),
      ...(input.devices && input.devices.length > 0 ? { devices: input.devices } : {}),
    },
  };
  if (input.devices && input.devices.length > 0 && !input.privileged) {
    (spec.linux.resources['devices'] as unknown[]).push(...input.devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: 'rwm' })));
  }
  return spec;
}

/** Namespaced sysctls a pod may set (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*). Values may not smuggle another setting. */
export function validateSysctls(sysctls: Record<string, string>, hostNetwork: boolean, hostIpc: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(sysctls)) {
    const name = key.replaceAll('/', '.');
    if (!/^[a-z0-9_.-]+$/.test(name) || name.includes('..')) throw new InvalidArgumentError(`sysctl ${JSON.stringify(key)} is not a valid name`);
    if (/[+=\n\0]/.test(value)) throw new InvalidArgumentError(`sysctl ${key}: value ${JSON.stringify(value)} may not contain '+', '=' or control characters`);
    const ipc = /^kernel\.(shm(all|max|mni|_rmid_forced)|msg(max|mnb|mni)|sem)$/.test(name) || name.startsWith('fs.mqueue.');
    const net = name.startsWith('net.');
    if (!ipc && !net) throw new InvalidArgumentError(`sysctl ${key} is not namespaced: a pod may not set it`);
    if (net && hostNetwork) throw new InvalidArgumentError(`sysctl ${key} would change the host's network namespace (hostNetwork pod)`);
    if (ipc && hostIpc) throw new InvalidArgumentError(`sysctl ${key} would change the host's IPC namespace (hostIPC pod)`);
    out[name] = value;
  }
  return out;
}

/**
 * The AppArmor profile for a container: a Localhost profile by name (it must
 * be loaded on the host; on a host without AppArmor asking for one is an
 * error). RuntimeDefault and Unconfined leave the process unconfined by
 * AppArmor: Berth loads no profile of its own.
 */
export function apparmorProfile(profile: criV1.SecurityProfile | undefined, legacy: string, hostHasAppArmor: boolean): string | undefined {
  const name = localhostRef(profile, legacy);
  if (name === undefined) return undefined;
  if (!/^[A-Za-z0-9_./-]+$/.test(name)) throw new InvalidArgumentError(`AppArmor profile ${JSON.stringify(name)} is not a valid profile name`);
  if (!hostHasAppArmor) throw new InvalidArgumentError(`AppArmor profile ${name} was asked for, but AppArmor is not enabled on this host`);
  return name;
}
