import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { debianPackageFile } from './debian.js';
import type { LayerEntry } from '@berth/oci';

/**
 * The dynamic busybox binary from Debian's `busybox` package (unpacked, not
 * installed, since that package conflicts with busybox-static).
 */
export function busyboxBinary(): string {
  return debianPackageFile('busybox', 'bin/busybox');
}

/** The shared libraries (and the dynamic loader) a binary needs, as absolute host paths. */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const paths = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1] !== undefined) paths.add(m[1]);
  }
  return [...paths];
}

/** Directory entries for every parent of `path`, outermost first. */
function parents(path: string, seen: Set<string>): LayerEntry[] {
  const out: LayerEntry[] = [];
  const parts = dirname(path).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    if (!seen.has(d)) {
      seen.add(d);
      out.push({ type: 'dir', path: d });
    }
  }
  return out;
}

/**
 * A minimal root filesystem: busybox with its libc, every applet as a hard
 * link to it in /bin, /etc/passwd and /etc/group with root and nobody, and
 * the usual empty directories.
 */
export function busyboxRootfs(): LayerEntry[] {
  const binary = busyboxBinary();
  const seen = new Set<string>();
  const entries: LayerEntry[] = [];
  for (const d of ['/bin', '/etc', '/tmp', '/proc', '/sys', '/dev', '/root', '/var', '/home']) {
    seen.add(d);
    entries.push({ type: 'dir', path: d, mode: d === '/tmp' ? 0o1777 : 0o755 });
  }
  entries.push({ type: 'file', path: '/bin/busybox', source: binary, mode: 0o755 });
  const applets = execFileSync(binary, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  for (const applet of applets) entries.push({ type: 'link', path: `/bin/${applet}`, target: '/bin/busybox' });
  for (const lib of sharedLibraries(binary)) {
    const real = realpathSync(lib);
    entries.push(...parents(real, seen));
    if (!seen.has(real)) {
      seen.add(real);
      entries.push({ type: 'file', path: real, source: real, mode: 0o755 });
    }
    if (lib !== real) {
      entries.push(...parents(lib, seen));
      if (!seen.has(lib)) {
        seen.add(lib);
        entries.push({ type: 'symlink', path: lib, target: real });
      }
    }
  }
  // /lib64 and /lib are symlinks into /usr on merged-/usr hosts; the paths
  // above are the ones ldd reports, which the loader resolves as written.
  entries.push({ type: 'file', path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' });
  entries.push({ type: 'file', path: '/etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' });
  return entries;
}
