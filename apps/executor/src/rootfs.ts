// Container root filesystems: an active snapshot on the image's top layer,
// prepared by the store and mounted by the executor.
import { mkdir, rmdir } from 'node:fs/promises';
import { InternalError, isCategory } from '@berth/errors';
import type { ExecutorContext } from './context.js';
import { run } from './runtime.js';

/** Mounts a writable snapshot on `parent` at `target`, or with `readonly` a read-only view of it (an image volume). */
export async function mountRootfs(ctx: ExecutorContext, key: string, parent: string, target: string, readonly = false): Promise<void> {
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
    if (m.type === 'bind') {
      await run('mount', ['--bind', m.source, target]);
      if (readonly) await run('mount', ['-o', 'remount,bind,ro', target]);
    }
    else await run('mount', ['-t', m.type, '-o', m.options.join(','), m.source, target]);
  } catch (err) {
    await ctx.store.snapshots.remove(key).catch(() => undefined);
    throw err;
  }
}

/** Unmounts and removes the snapshot; a rootfs already gone is fine. */
export async function unmountRootfs(ctx: ExecutorContext, key: string, target: string): Promise<void> {
  await run('umount', [target]).catch(async () => {
    // Busy (a process of the container still dying): detach it; the kernel frees it when the last user goes.
    await run('umount', ['-l', target]).catch(() => undefined);
  });
  await rmdir(target).catch(() => undefined);
  await ctx.store.snapshots.remove(key).catch((err: unknown) => {
    if (!isCategory(err, 'not-found')) throw err;
  });
}
