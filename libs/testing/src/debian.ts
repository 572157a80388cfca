import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * A file from a Debian package, downloaded with `apt-get download` and
 * unpacked with dpkg-deb under tmp/testdata/<package> (cached between test
 * runs) rather than installed: the package may conflict with one the
 * machine has. Needs `apt-get update` to have run once on the machine.
 */
export function debianPackageFile(pkg: string, path: string): string {
  const cacheDir = resolve(import.meta.dirname, '../../../tmp/testdata', pkg);
  const file = join(cacheDir, 'root', path);
  if (existsSync(file)) return file;
  mkdirSync(cacheDir, { recursive: true });
  execFileSync('apt-get', ['download', pkg], { cwd: cacheDir, stdio: ['ignore', 'ignore', 'inherit'] });
  const deb = readdirSync(cacheDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new Error(`apt-get download ${pkg} produced no .deb`);
  execFileSync('dpkg-deb', ['-x', join(cacheDir, deb), join(cacheDir, 'root')]);
  return file;
}
