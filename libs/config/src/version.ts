import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Berth's version, from the workspace's package.json (one number for every service). */
export const berthVersion: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../../package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();
