import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@berth/errors';
import type { Db } from '@berth/db';
import { resolveId } from '@berth/proto';
import { isDigest } from '@berth/spec';
import {
  gcRefContentPrefix,
  gcRefSnapshot,
  validateDigest,
  validateLabels,
  validateLeaseResource,
  validateName,
  validateSize,
  type FsUsage,
  type GcResult,
  type ImageRecord,
  type Labels,
  type Lease,
  type LeaseResource,
  type Store,
  type Usage,
} from '@berth/store-api';
import { LocalContentStore } from './content-store.js';
import { RwLock } from './locks.js';
import { mountpointOf } from './mountpoint.js';
import { leaseExists } from './queries.js';
import { OverlaySnapshotter } from './snapshotter.js';

export interface LocalStoreOptions {
  db: Db;
  /** The state directory: content/ and snapshots/ go below it. */
  stateDir: string;
  /** An ingest no writer holds and no lease protects is removed by GC after this long. */
  staleIngestMs?: number;
  /** How long a measured active-snapshot usage is reused by fsUsage. */
  usageCacheMs?: number;
  /** Called when GC finishes in the background (after image removal or on the timer). */
  onBackgroundGc?: (result: GcResult | Error) => void;
}

type ImageRow = { id: string; manifestDigest: string; size: bigint; topChainId: string; pinned: boolean; createdAt: Date; names: Array<{ name: string; kind: string }> };
const toImage = (r: ImageRow): ImageRecord => ({
  id: r.id,
  manifestDigest: r.manifestDigest,
  size: Number(r.size),
  topChainId: r.topChainId,
  pinned: r.pinned,
  names: r.names.map((n): ImageRecord['names'][number] => ({ name: n.name, kind: n.kind === 'digest' ? 'digest' : 'tag' })).sort((a, b) => a.name.localeCompare(b.name)),
  createdAt: r.createdAt,
});

type LeaseRow = { id: string; expiresAt: Date | null; labels: string; createdAt: Date; resources: Array<{ kind: string; ref: string }> };
const toLease = (r: LeaseRow): Lease => ({
  id: r.id,
  ...(r.expiresAt === null ? {} : { expiresAt: r.expiresAt }),
  labels: JSON.parse(r.labels) as Labels,
  createdAt: r.createdAt,
  resources: r.resources.map((x) => ({ kind: x.kind as LeaseResource['kind'], ref: x.ref })),
});

/** Image names are references: printable, no spaces, at most 512 characters. */
function validateImageName(name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 512 || !/^[\x21-\x7e]+$/.test(name)) throw new InvalidArgumentError(`invalid image name ${JSON.stringify(String(name).slice(0, 64))}`);
  return name;
}

/**
 * The store on the local disk: content, overlay snapshots, image records and
 * leases in the database, garbage collection and usage. `open` reconciles disk
 * and database (crash recovery) before anything is served.
 */
export class LocalStore implements Store {
  readonly content: LocalContentStore;
  readonly snapshots: OverlaySnapshotter;
  private readonly db: Db;
  private readonly gcLock = new RwLock();
  private readonly mountpoint: string;
  private measuringActive: Promise<void> | undefined;
  private activeUsageCache: { at: number; usage: Usage } | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private gcScheduled = false;

  private constructor(private readonly options: LocalStoreOptions) {
    this.db = options.db;
    const addLeaseResource = (leaseId: string, kind: LeaseResource['kind'], ref: string) => this.addLeaseResource(leaseId, { kind, ref });
    this.content = new LocalContentStore({ db: this.db, root: join(options.stateDir, 'content'), gcLock: this.gcLock, addLeaseResource });
    this.snapshots = new OverlaySnapshotter({ db: this.db, root: join(options.stateDir, 'snapshots'), gcLock: this.gcLock, addLeaseResource });
    this.mountpoint = mountpointOf(options.stateDir);
  }

  /** Opens the store, repairing whatever a crash left half done. */
  static async open(options: LocalStoreOptions): Promise<{ store: LocalStore; repaired: Record<string, number> }> {
    const store = new LocalStore(options);
    await store.content.init();
    const content = await store.content.reconcile();
    const snapshots = await store.snapshots.reconcile();
    return { store, repaired: { ...content, ...snapshots } };
  }

  /** Runs GC every `intervalMs` until closed. */
  startGcTimer(intervalMs: number): void {
    this.gcTimer = setInterval(() => this.scheduleGc(), intervalMs);
    this.gcTimer.unref();
  }

  /** Runs GC soon in the background, once however often it is asked for before it starts. */
  scheduleGc(): void {
    if (this.gcScheduled) return;
    this.gcScheduled = true;
    setImmediate(() => {
      this.gcScheduled = false;
      this.garbageCollect().then(
        (r) => this.options.onBackgroundGc?.(r),
        (e: unknown) => this.options.onBackgroundGc?.(e instanceof Error ? e : new Error(String(e))),
      );
    });
  }

  // Images

  async putImage(record: Omit<ImageRecord, 'createdAt'>): Promise<ImageRecord> {
    const id = validateDigest(record.id);
    const manifestDigest = validateDigest(record.manifestDigest);
    validateSize('image size', record.size);
    if (record.topChainId !== '') validateDigest(record.topChainId);
    const names = record.names.map((n) => {
      if (n.kind !== 'tag' && n.kind !== 'digest') throw new InvalidArgumentError(`invalid image name kind ${JSON.stringify(String(n.kind))}`);
      return { name: validateImageName(n.name), kind: n.kind };
    });
    return this.gcLock.shared(async () => {
      const row = await this.db.$transaction(async (tx) => {
        await tx.image.upsert({
          where: { id },
          create: { id, manifestDigest, size: BigInt(record.size), topChainId: record.topChainId, pinned: record.pinned },
          update: { manifestDigest, size: BigInt(record.size), topChainId: record.topChainId, pinned: record.pinned },
        });
        const losers = await tx.imageName.findMany({ where: { name: { in: names.map((n) => n.name) }, imageId: { not: id } }, select: { imageId: true } });
        for (const n of names) await tx.imageName.upsert({ where: { name: n.name }, create: { name: n.name, kind: n.kind, imageId: id }, update: { kind: n.kind, imageId: id } });
        // An image whose last name moved to this one is gone.
        for (const { imageId } of losers) if ((await tx.imageName.count({ where: { imageId } })) === 0) await tx.image.delete({ where: { id: imageId } });
        return tx.image.findUniqueOrThrow({ where: { id }, include: { names: true } });
      });
      return toImage(row);
    });
  }

  /** By id, by name, or by a unique prefix of an id (see ImageStore.getImage). */
  private async findImage(ref: string): Promise<ImageRow | null> {
    if (isDigest(ref)) {
      const byId = await this.db.image.findUnique({ where: { id: ref }, include: { names: true } });
      if (byId !== null) return byId;
    }
    validateImageName(ref);
    const name = await this.db.imageName.findUnique({ where: { name: ref }, include: { image: { include: { names: true } } } });
    if (name !== null) return name.image;
    // An id prefix as crictl shows ids: hex, with or without its algorithm (containerd's digestset takes both).
    const prefix = /^(?:(sha256|sha512):)?[0-9a-f]+$/.exec(ref);
    if (prefix === null) return null;
    const idOf = prefix[1] === undefined ? (id: string) => id.slice(id.indexOf(':') + 1) : (id: string) => id;
    const ids = await this.db.image.findMany({ select: { id: true } });
    const match = resolveId(ids, ref, 'image', (row) => idOf(row.id));
    return match === undefined ? null : this.db.image.findUnique({ where: { id: match.id }, include: { names: true } });
  }

  async getImage(ref: string): Promise<ImageRecord> {
    const row = await this.findImage(ref);
    if (row === null) throw new NotFoundError(`image ${ref} not found`);
    return toImage(row);
  }

  async listImages(): Promise<ImageRecord[]> {
    return (await this.db.image.findMany({ include: { names: true }, orderBy: { createdAt: 'asc' } })).map(toImage);
  }

  async removeImageName(name: string): Promise<{ imageRemoved: boolean }> {
    validateImageName(name);
    const row = await this.db.imageName.findUnique({ where: { name } });
    if (row === null) throw new NotFoundError(`image ${name} not found`);
    const imageRemoved = await this.db.$transaction(async (tx) => {
      await tx.imageName.delete({ where: { name } });
      // Digest names alone keep an image only when one of them is what was removed: its last tag takes them with it.
      const left = await tx.imageName.findMany({ where: { imageId: row.imageId }, select: { kind: true } });
      if (left.some((n) => n.kind === 'tag') || (row.kind !== 'tag' && left.length > 0)) return false;
      await tx.image.delete({ where: { id: row.imageId } });
      return true;
    });
    if (imageRemoved) this.scheduleGc();
    return { imageRemoved };
  }

  async deleteImage(ref: string): Promise<void> {
    const row = await this.findImage(ref);
    if (row === null) throw new NotFoundError(`image ${ref} not found`);
    await this.db.image.delete({ where: { id: row.id } });
    this.scheduleGc();
  }

  // Leases

  async createLease(options: { id?: string; expiresAt?: Date; labels?: Labels } = {}): Promise<Lease> {
    const id = options.id === undefined || options.id === '' ? `lease-${randomUUID()}` : validateName('lease id', options.id);
    const labels = validateLabels(options.labels);
    if (options.expiresAt !== undefined && Number.isNaN(options.expiresAt.getTime())) throw new InvalidArgumentError('invalid lease expiry');
    if (await leaseExists(this.db, id)) throw new AlreadyExistsError(`lease ${id} already exists`);
    const row = await this.db.lease.create({ data: { id, expiresAt: options.expiresAt ?? null, labels: JSON.stringify(labels) } });
    return toLease({ ...row, resources: [] });
  }

  async deleteLease(id: string): Promise<void> {
    validateName('lease id', id);
    const removed = await this.db.lease.deleteMany({ where: { id } });
    if (removed.count === 0) throw new NotFoundError(`lease ${id} not found`);
  }

  async listLeases(): Promise<Lease[]> {
    return (await this.db.lease.findMany({ include: { resources: true }, orderBy: { createdAt: 'asc' } })).map(toLease);
  }

  async addLeaseResource(id: string, resource: LeaseResource): Promise<void> {
    validateName('lease id', id);
    const r = validateLeaseResource(resource);
    // One statement: added unless the lease is missing or already holds it (this is on every pull's path, several times).
    const added = await this.db.$executeRaw`INSERT INTO lease_resources (lease_id, kind, ref) SELECT id, CAST(${r.kind} AS TEXT), CAST(${r.ref} AS TEXT) FROM leases WHERE id = ${id} ON CONFLICT DO NOTHING`;
    if (added === 0 && !(await leaseExists(this.db, id))) throw new NotFoundError(`lease ${id} not found`);
  }

  async removeLeaseResource(id: string, resource: LeaseResource): Promise<void> {
    validateName('lease id', id);
    const r = validateLeaseResource(resource);
    await this.db.leaseResource.deleteMany({ where: { leaseId: id, kind: r.kind, ref: r.ref } });
  }

  // Garbage collection

  /**
   * Mark and sweep. Roots: every image (its manifest and top snapshot), every
   * live lease's resources, and every active or view snapshot. Blobs reach
   * further blobs and snapshots through their gc.ref labels; snapshots reach
   * their parents. Unmarked snapshots (children first) and blobs are removed,
   * record first, then files, so an interrupted sweep leaves only files
   * without records, which the next start removes. Holds the GC lock
   * exclusively: nothing is added while it runs.
   */
  async garbageCollect(): Promise<GcResult> {
    return this.gcLock.exclusive(async () => {
      const now = new Date();
      const expired = await this.db.lease.findMany({ where: { expiresAt: { lt: now } }, select: { id: true } });
      if (expired.length > 0) await this.db.lease.deleteMany({ where: { id: { in: expired.map((l) => l.id) } } });

      const blobs = await this.db.blob.findMany({ select: { digest: true, labels: true } });
      const snapshots = await this.db.snapshot.findMany({ select: { key: true, kind: true, parent: true } });
      const resources = await this.db.leaseResource.findMany();
      const images = await this.db.image.findMany({ select: { manifestDigest: true, topChainId: true } });

      const blobLabels = new Map(blobs.map((b) => [b.digest, JSON.parse(b.labels) as Labels]));
      const snapshotParent = new Map(snapshots.map((s) => [s.key, s.parent]));
      const liveBlobs = new Set<string>();
      const liveSnapshots = new Set<string>();
      const blobQueue: string[] = [];
      const markSnapshot = (key: string | null | undefined): void => {
        while (key !== null && key !== undefined && snapshotParent.has(key) && !liveSnapshots.has(key)) {
          liveSnapshots.add(key);
          key = snapshotParent.get(key);
        }
      };
      const markBlob = (digest: string): void => {
        if (!liveBlobs.has(digest) && blobLabels.has(digest)) {
          liveBlobs.add(digest);
          blobQueue.push(digest);
        }
      };
      for (const i of images) {
        markBlob(i.manifestDigest);
        markSnapshot(i.topChainId);
      }
      for (const r of resources) {
        if (r.kind === 'blob') markBlob(r.ref);
        else if (r.kind === 'snapshot') markSnapshot(r.ref);
      }
      for (const s of snapshots) if (s.kind !== 'committed') markSnapshot(s.key);
      while (blobQueue.length > 0) {
        const labels = blobLabels.get(blobQueue.pop()!) ?? {};
        for (const [k, v] of Object.entries(labels)) {
          if (k.startsWith(gcRefContentPrefix)) markBlob(v);
          else if (k === gcRefSnapshot) markSnapshot(v);
        }
      }

      const removedSnapshots: string[] = [];
      let doomed = snapshots.filter((s) => !liveSnapshots.has(s.key));
      // Children before parents: remove those nothing else doomed builds on, repeatedly.
      while (doomed.length > 0) {
        const parents = new Set(doomed.map((s) => s.parent).filter((p): p is string => p !== null));
        const leaves = doomed.filter((s) => !parents.has(s.key));
        for (const s of leaves) {
          await this.snapshots.remove(s.key);
          removedSnapshots.push(s.key);
        }
        doomed = doomed.filter((s) => parents.has(s.key));
        if (leaves.length === 0) break;
      }
      const removedBlobs: string[] = [];
      for (const b of blobs) {
        if (liveBlobs.has(b.digest)) continue;
        await this.content.delete(b.digest);
        removedBlobs.push(b.digest);
      }
      const leasedIngests = new Set(resources.filter((r) => r.kind === 'ingest').map((r) => r.ref));
      const staleBefore = now.getTime() - (this.options.staleIngestMs ?? 60 * 60 * 1000);
      const removedIngests: string[] = [];
      for (const ingest of await this.content.listIngests()) {
        if (this.content.isLocked(ingest.ref) || leasedIngests.has(ingest.ref) || ingest.updatedAt.getTime() > staleBefore) continue;
        await this.content.abortIngest(ingest.ref);
        removedIngests.push(ingest.ref);
      }
      // Measured again, behind the next answer.
      if (this.activeUsageCache !== undefined) this.activeUsageCache.at = 0;
      return { removedBlobs, removedSnapshots, removedIngests, expiredLeases: expired.map((l) => l.id) };
    });
  }

  // Usage

  /**
   * Content: the sum of committed blob sizes and one inode each, from the
   * database. Snapshots: committed layers' usage measured once at commit,
   * plus active and view snapshots measured on disk (reused for
   * usageCacheMs). The CRI frontend keeps what this answers (FsUsageView),
   * so the kubelet's polling rarely reaches it.
   */
  async fsUsage(): Promise<FsUsage> {
    const content = await this.db.blob.aggregate({ _sum: { size: true }, _count: { _all: true } });
    const committed = await this.db.snapshot.aggregate({ where: { kind: 'committed' }, _sum: { size: true, inodes: true } });
    const cacheMs = this.options.usageCacheMs ?? 5000;
    const measure = (): Promise<void> =>
      (this.measuringActive ??= (async () => {
        let bytes = 0;
        let inodes = 0;
        for (const s of await this.db.snapshot.findMany({ where: { kind: { not: 'committed' } }, select: { key: true } })) {
          const u = await this.snapshots.usage(s.key).catch(() => ({ bytes: 0, inodes: 0 }));
          bytes += u.bytes;
          inodes += u.inodes;
        }
        this.activeUsageCache = { at: Date.now(), usage: { bytes, inodes } };
      })().finally(() => (this.measuringActive = undefined)));
    // The walk of active snapshots is the slow part: a stale figure is answered at once and refreshed behind it.
    if (this.activeUsageCache === undefined || cacheMs === 0) await measure();
    else if (Date.now() - this.activeUsageCache.at > cacheMs) void measure().catch(() => undefined);
    if (this.activeUsageCache === undefined) throw new Error('active snapshot usage was not measured');
    const active = this.activeUsageCache.usage;
    return {
      mountpoint: this.mountpoint,
      content: { bytes: Number(content._sum.size ?? 0n), inodes: content._count._all },
      snapshots: { bytes: Number(committed._sum.size ?? 0n) + active.bytes, inodes: Number(committed._sum.inodes ?? 0n) + active.inodes },
      timestamp: new Date(),
    };
  }

  async close(): Promise<void> {
    if (this.gcTimer) clearInterval(this.gcTimer);
  }
}
