// Container root filesystems: an active snapshot on the image's top layer,
// prepared by the store and mounted by the executor.
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { InternalError, isCategory } from '@berth/errors';
import { writableDir } from '@berth/store-api';
import type { ExecutorContext } from './context.js';
import { mount, mountPoints, unmount } from '@berth/native';

/**
 * Mounts a writable snapshot `key` on `parent` at `target`, or with `readonly` a
 * read-only view of it (an image volume); returns the directory the
 * snapshot writes to (none for a view).
 */
export async function mountRootfs(ctx: ExecutorContext, key: string, parent: string, target: string, readonly = false): Promise<string | undefined> {
  let mounts;
  const labels = { labels: { 'berth.io/owner': 'executor' } };
  try {
    mounts = readonly ? await ctx.store.snapshots.view(key, parent, labels) : await ctx.store.snapshots.prepare(key, parent === '' ? undefined : parent, labels);
  } catch (err) {
    if (!isCategory(err, 'already-exists')) throw err;
    mounts = await ctx.store.snapshots.mounts(key);
  }
  await mkdir(target, { recursive: true, mode: 0o755 });
  const m = mounts[0];
  if (m === undefined) throw new InternalError(`the store gave no mounts for snapshot ${key}`);
  try {
    await mount(m.source, target, m.type, readonly ? [...m.options.filter((o) => o !== 'rw'), 'ro'] : m.options);
  } catch (err) {
    await ctx.store.snapshots.remove(key).catch(() => undefined);
    throw err;
  }
  return writableDir(m);
}

/** Unmounts and removes the snapshot; a rootfs already gone is fine. */
export async function unmountRootfs(ctx: ExecutorContext, key: string, target: string): Promise<void> {
  await unmount(target).catch(() => undefined);
  await rmdir(target).catch(() => undefined);
  await ctx.store.snapshots.remove(key).catch((err: unknown) => {
    if (!isCategory(err, 'not-found')) throw err;
  });
}

/** Whether something is mounted at `path` (an absolute path), by this process's mountinfo. */
export async function isMountPoint(path: string): Promise<boolean> {
  return mountPoints(await readFile('/proc/self/mountinfo', 'utf8')).includes(path);
}
