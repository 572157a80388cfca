import { readFileSync } from 'node:fs';

/** The mount point of the filesystem holding `path` (the longest mount point that is a prefix of it). */
export function mountpointOf(path: string, mountinfo = '/proc/self/mountinfo'): string {
  let best = '/';
  for (const line of readFileSync(mountinfo, 'utf8').split('\n')) {
    // Field 5 is the mount point, with spaces and the like octal-escaped.
    const mp = line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === undefined) continue;
    const within = mp === '/' || path === mp || path.startsWith(`${mp}/`);
    if (within && mp.length > best.length) best = mp;
  }
  return best;
}
