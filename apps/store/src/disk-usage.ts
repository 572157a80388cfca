import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Usage } from '@berth/store-api';

/**
 * Bytes (allocated blocks, as du counts them) and inodes under `root`, each
 * inode counted once however many hard links it has.
 */
export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path, { bigint: true });
    } catch {
      return; // removed while walking
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      inodes += 1;
      bytes += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = await readdir(path);
      } catch {
        return;
      }
      for (const name of names) await walk(join(path, name));
    }
  };
  await walk(root);
  return { bytes, inodes };
}
