import { readFileSync } from 'node:fs';
import { mountPoints } from '@berth/native';

/** The mount point of the filesystem holding `path` (the longest mount point that is a prefix of it). */
export function mountpointOf(path: string, mountinfo = '/proc/self/mountinfo'): string {
  let best = '/';
  for (const mp of mountPoints(readFileSync(mountinfo, 'utf8'))) {
    const within = mp === '/' || path === mp || path.startsWith(`${mp}/`);
    if (within && mp.length > best.length) best = mp;
  }
  return best;
}
