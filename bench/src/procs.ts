// Process accounting for the benchmarks: resident memory and CPU time of a
// runtime's daemons and of its per-pod helpers (conmon, containerd's shims).
import { readdirSync, readFileSync } from 'node:fs';

const ticks = 100; // USER_HZ on Linux

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Pids whose command line contains `needle` (and whose command is `name` when given). */
export function pidsMatching(needle: string, name?: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = read(`/proc/${entry}/cmdline`);
    if (cmdline === undefined || !cmdline.includes(needle)) continue;
    if (name !== undefined && (read(`/proc/${entry}/comm`) ?? '').trim() !== name) continue;
    out.push(Number(entry));
  }
  return out;
}

/** Resident memory in bytes, summed over the pids. */
export function rssBytes(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`) ?? '');
    if (m) sum += Number(m[1]) * 1024;
  }
  return sum;
}

/** User + system CPU seconds, summed over the pids (children that were waited for included). */
export function cpuSeconds(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const stat = read(`/proc/${pid}/stat`);
    if (stat === undefined) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14-17 (utime, stime, cutime, cstime) are f[11..14]
    sum += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / ticks;
  }
  return sum;
}

/** Direct children of `pid` named `name`. */
export function childrenNamed(pid: number, name: string): number[] {
  const text = read(`/proc/${pid}/task/${pid}/children`) ?? '';
  return text
    .split(' ')
    .filter(Boolean)
    .map(Number)
    .filter((c) => (read(`/proc/${c}/comm`) ?? '').trim() === name);
}
