import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@berth/errors';
import type { Db } from '@berth/db';
import { validateLabels, validateName, type Labels, type Mount, type SnapshotInfo, type SnapshotKind, type SnapshotOptions, type Snapshotter, type Usage } from '@berth/store-api';
import { diskUsage } from '@berth/native';
import { Mutex, type RwLock } from './locks.js';
import { lastSnapshotDir, snapshotExists } from './queries.js';

export interface OverlaySnapshotterDeps {
  db: Db;
  /** The snapshots directory: one numbered directory per snapshot below it. */
  root: string;
  gcLock: RwLock;
  addLeaseResource(leaseId: string, kind: 'snapshot', ref: string): Promise<void>;
}

interface Row {
  key: string;
  dirId: number;
  kind: string;
  parent: string | null;
  labels: string;
  size: bigint;
  inodes: bigint;
  createdAt: Date;
}

const toInfo = (r: Row): SnapshotInfo => ({
  key: r.key,
  kind: r.kind as SnapshotKind,
  ...(r.parent === null ? {} : { parent: r.parent }),
  labels: JSON.parse(r.labels) as Labels,
  createdAt: r.createdAt,
});

/** overlayfs cannot take more lower layers than fit in one page of mount options. */
const maxMountOptionBytes = 4000;

/**
 * Snapshots on overlayfs. Each snapshot owns `<root>/<dirId>/fs` (its layer:
 * the upper directory while active, a lower one once committed) and
 * `<root>/<dirId>/work` (overlayfs's work directory). Directory numbers come
 * from the database, never from keys. Mutations are serialised by a mutex;
 * records and directories are reconciled at start.
 */
export class OverlaySnapshotter implements Snapshotter {
  private readonly mutex = new Mutex();

  constructor(private readonly deps: OverlaySnapshotterDeps) {}

  dir(dirId: number): string {
    return join(this.deps.root, String(dirId));
  }

  private async row(key: string): Promise<Row> {
    validateName('snapshot key', key);
    const row = await this.deps.db.snapshot.findUnique({ where: { key } });
    if (row === null) throw new NotFoundError(`snapshot ${key} not found`);
    return row;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return toInfo(await this.row(key));
  }

  async list(): Promise<SnapshotInfo[]> {
    return (await this.deps.db.snapshot.findMany({ orderBy: { dirId: 'asc' } })).map(toInfo);
  }

  /** The fs directories of `key`'s committed ancestors, nearest first. */
  private async lowerDirs(parent: string | null): Promise<string[]> {
    const dirs: string[] = [];
    let next = parent;
    while (next !== null) {
      const p = await this.row(next);
      dirs.push(join(this.dir(p.dirId), 'fs'));
      next = p.parent;
    }
    return dirs;
  }

  private async mountsOf(row: Row): Promise<Mount[]> {
    const lowers = await this.lowerDirs(row.parent);
    const own = this.dir(row.dirId);
    if (row.kind === 'view') {
      if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['rbind', 'ro'] }];
      if (lowers.length === 0) return [{ type: 'bind', source: join(own, 'fs'), options: ['rbind', 'ro'] }];
      return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] }];
    }
    if (row.kind === 'committed') {
      // A committed layer is read only; mounting it shows the whole chain.
      const all = [join(own, 'fs'), ...lowers];
      if (all.length === 1) return [{ type: 'bind', source: all[0]!, options: ['rbind', 'ro'] }];
      return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${all.join(':')}`] }];
    }
    if (lowers.length === 0) return [{ type: 'bind', source: join(own, 'fs'), options: ['rbind', 'rw'] }];
    const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${join(own, 'fs')}`, `workdir=${join(own, 'work')}`];
    if (options.join(',').length > maxMountOptionBytes) throw new FailedPreconditionError(`snapshot ${row.key}: ${lowers.length} layers are more than one overlay mount can stack`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.mountsOf(await this.row(key));
  }

  private async create(kind: 'active' | 'view', key: string, parent: string | undefined, options: SnapshotOptions = {}): Promise<Mount[]> {
    validateName('snapshot key', key);
    if (parent !== undefined && parent !== '') validateName('snapshot key', parent);
    if (kind === 'view' && (parent === undefined || parent === '')) throw new InvalidArgumentError('a view needs a parent');
    const labels = validateLabels(options.labels);
    return this.deps.gcLock.shared(() =>
      this.mutex.run(async () => {
        if (await snapshotExists(this.deps.db, key)) throw new AlreadyExistsError(`snapshot ${key} already exists`);
        if (parent !== undefined && parent !== '') {
          const p = await this.row(parent);
          if (p.kind !== 'committed') throw new FailedPreconditionError(`parent ${parent} is ${p.kind}, not committed`);
        }
        if (options.leaseId) await this.deps.addLeaseResource(options.leaseId, 'snapshot', key);
        const dirId = (await lastSnapshotDir(this.deps.db)) + 1;
        const dir = this.dir(dirId);
        // A directory left by a crash under this number is stale: start clean.
        await rm(dir, { recursive: true, force: true });
        await mkdir(join(dir, 'fs'), { recursive: true, mode: 0o755 });
        await mkdir(join(dir, 'work'), { mode: 0o700 });
        const row = await this.deps.db.snapshot.create({ data: { key, dirId, kind, parent: parent === '' || parent === undefined ? null : parent, labels: JSON.stringify(labels) } });
        return this.mountsOf(row);
      }),
    );
  }

  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, options);
  }

  view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions & { parent?: string } = {}): Promise<SnapshotInfo> {
    validateName('snapshot name', name);
    const parent = options.parent === undefined || options.parent === '' ? undefined : validateName('snapshot parent', options.parent);
    const labels = validateLabels(options.labels);
    return this.deps.gcLock.shared(() =>
      this.mutex.run(async () => {
        const row = await this.row(key);
        if (row.kind !== 'active') throw new FailedPreconditionError(`snapshot ${key} is ${row.kind}; only an active snapshot can be committed`);
        if (await snapshotExists(this.deps.db, name)) throw new AlreadyExistsError(`snapshot ${name} already exists`);
        if (parent !== undefined) {
          if (row.parent !== null) throw new FailedPreconditionError(`snapshot ${key} was prepared on ${row.parent}; only a snapshot prepared without a parent can be given one at commit`);
          const p = await this.row(parent);
          if (p.kind !== 'committed') throw new FailedPreconditionError(`parent ${parent} is ${p.kind}, not committed`);
        }
        const usage = await diskUsage(join(this.dir(row.dirId), 'fs'));
        if (options.leaseId) await this.deps.addLeaseResource(options.leaseId, 'snapshot', name);
        const merged = { ...(JSON.parse(row.labels) as Labels), ...labels };
        const updated = await this.deps.db.snapshot.update({
          where: { key },
          data: { key: name, kind: 'committed', labels: JSON.stringify(merged), size: BigInt(usage.bytes), inodes: BigInt(usage.inodes), ...(parent === undefined ? {} : { parent }) },
        });
        await rm(join(this.dir(row.dirId), 'work'), { recursive: true, force: true });
        return toInfo(updated);
      }),
    );
  }

  async remove(key: string): Promise<void> {
    await this.mutex.run(async () => {
      const row = await this.row(key);
      const children = await this.deps.db.snapshot.count({ where: { parent: key } });
      if (children > 0) throw new FailedPreconditionError(`snapshot ${key} has ${children} children`);
      await this.deps.db.snapshot.delete({ where: { key } });
      // The directory is renamed aside (to a name no snapshot will have: its
      // number is free again at once) and deleted in the background, so a
      // container that wrote gigabytes is removed as fast as an empty one.
      // A crash before the delete ends leaves a directory without a record,
      // which reconcile() removes at the next start.
      const aside = join(this.deps.root, `removed-${row.dirId}-${randomUUID()}`);
      try {
        await rename(this.dir(row.dirId), aside);
        void rm(aside, { recursive: true, force: true }).catch(() => undefined);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') await rm(this.dir(row.dirId), { recursive: true, force: true });
      }
    });
  }

  async usage(key: string): Promise<Usage> {
    const row = await this.row(key);
    if (row.kind === 'committed') return { bytes: Number(row.size), inodes: Number(row.inodes) };
    return diskUsage(join(this.dir(row.dirId), 'fs'));
  }

  /**
   * Makes records and directories agree after a crash: a directory without a
   * record is removed; a record without its directory is dropped together
   * with every snapshot built on it (their layers are incomplete).
   */
  async reconcile(): Promise<{ removedDirs: number; removedRecords: number }> {
    await mkdir(this.deps.root, { recursive: true, mode: 0o700 });
    const rows = await this.deps.db.snapshot.findMany();
    const byDir = new Map(rows.map((r) => [String(r.dirId), r]));
    let removedDirs = 0;
    for (const name of await readdir(this.deps.root)) {
      if (!byDir.has(name)) {
        await rm(join(this.deps.root, name), { recursive: true, force: true });
        removedDirs += 1;
      }
    }
    const broken = new Set<string>();
    for (const r of rows) {
      try {
        await stat(join(this.dir(r.dirId), 'fs'));
      } catch {
        broken.add(r.key);
      }
    }
    // Everything built on a broken snapshot is broken too.
    let grew = true;
    while (grew) {
      grew = false;
      for (const r of rows) {
        if (!broken.has(r.key) && r.parent !== null && broken.has(r.parent)) {
          broken.add(r.key);
          grew = true;
        }
      }
    }
    // Delete children before parents.
    const depth = (r: Row): number => {
      let d = 0;
      let p = r.parent;
      while (p !== null) {
        d += 1;
        p = rows.find((x) => x.key === p)?.parent ?? null;
      }
      return d;
    };
    const doomed = rows.filter((r) => broken.has(r.key)).sort((a, b) => depth(b) - depth(a));
    for (const r of doomed) {
      await this.deps.db.snapshot.delete({ where: { key: r.key } });
      await rm(this.dir(r.dirId), { recursive: true, force: true });
    }
    return { removedDirs, removedRecords: doomed.length };
  }
}
