import { existsSync } from 'node:fs';

export type CgroupDriver = 'cgroupfs' | 'systemd';
export type CgroupVersion = 'v1' | 'v2';

/** v2 when /sys/fs/cgroup is the unified hierarchy, v1 otherwise (legacy or hybrid). */
export function detectCgroupVersion(root = '/sys/fs/cgroup'): CgroupVersion {
  return existsSync(`${root}/cgroup.controllers`) ? 'v2' : 'v1';
}

/** Whether systemd is this host's init (it creates /run/systemd/system at boot). */
export function systemdIsInit(): boolean {
  return existsSync('/run/systemd/system');
}

/**
 * The cgroup driver Berth uses: the configured one, or with `auto` systemd
 * when it is init and cgroupfs otherwise. Asking for systemd on a host without
 * it is a configuration error, reported at start rather than at the first pod.
 */
export function resolveCgroupDriver(configured: 'auto' | CgroupDriver, hasSystemd = systemdIsInit()): CgroupDriver {
  if (configured === 'auto') return hasSystemd ? 'systemd' : 'cgroupfs';
  if (configured === 'systemd' && !hasSystemd) throw new Error('cgroupDriver = "systemd" but systemd is not running on this host');
  return configured;
}
