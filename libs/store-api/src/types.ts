/**
 * The store's interfaces: small roles composed into one `Store`. The local
 * implementation (apps/store) and the remote client (remote-store.ts, over the
 * store's internal gRPC API) implement the same interfaces, and one test suite
 * (testsuite.ts) runs against both. Callers take the narrowest role they need.
 *
 * Errors are BerthErrors: `not-found`, `already-exists`, `invalid-argument`
 * (a malformed digest, key or ref), `failed-precondition` (e.g. removing a
 * snapshot with children, a size or digest mismatch at commit), `unavailable`
 * (an ingest held by another writer), `resource-exhausted` (disk full).
 */
import type { WriteData } from './file-io.js';

export type Labels = Record<string, string>;

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Labels;
  createdAt: Date;
}

export interface IngestStatus {
  ref: string;
  /** Bytes written so far: where the next write goes. */
  offset: number;
  /** The expected size, 0 when unknown. */
  total: number;
  expectedDigest: string;
  startedAt: Date;
  updatedAt: Date;
}

/** Reads committed blobs. */
export interface ContentProvider {
  info(digest: string): Promise<ContentInfo>;
  /** The blob's bytes from `offset`, `length` of them (0: to the end), in chunks. */
  read(digest: string, range?: { offset?: number; length?: number }): AsyncIterable<Uint8Array>;
}

export interface WriterOptions {
  /** Names the ingest; the same ref resumes it. Printable, at most 256 characters. */
  ref: string;
  /** The digest the blob must have. */
  expectedDigest: string;
  /** The size it must have, when known. */
  expectedSize?: number;
  labels?: Labels;
  /** A lease to hold the ingest and the committed blob. */
  leaseId?: string;
}

/**
 * One open ingest. Only one writer holds a ref at a time. Writes append at
 * `offset`; `commit` verifies size and digest and makes the blob visible
 * atomically; `close` keeps what was written for a later resume; `abort`
 * discards it.
 */
export interface ContentWriter {
  readonly ref: string;
  offset(): number;
  /** Appends `data`; a list is written as one piece, without joining it first. */
  write(data: WriteData): Promise<void>;
  commit(labels?: Labels): Promise<ContentInfo>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * A writer whose data file a co-located client may fill itself (the store's
 * local-write path): the client writes the bytes into `dataPath` and calls
 * `advance` with how far it got; the store reads and hashes that range.
 */
export interface LocalFileWriter extends ContentWriter {
  readonly dataPath: string;
  advance(offset: number): Promise<void>;
}

export const isLocalFileWriter = (w: ContentWriter): w is LocalFileWriter => 'advance' in w && typeof (w as LocalFileWriter).advance === 'function';

/** Writes blobs. */
export interface ContentIngester {
  /** Opens (or resumes) the ingest `ref`; `unavailable` while another writer holds it. */
  writer(options: WriterOptions): Promise<ContentWriter>;
  /**
   * Makes the regular file at `path` (absolute, on the store's host) a blob,
   * verified like any ingest: `failed-precondition` on a size or digest
   * mismatch, with nothing left behind.
   */
  importFile(path: string, options: WriterOptions): Promise<ContentInfo>;
  /**
   * Stores a small blob given whole (at most {@link maxPutBytes}), verified
   * like any ingest. A blob already there is kept: it joins the lease and
   * gets the labels merged in (no `already-exists`).
   */
  put(data: Uint8Array, options: WriterOptions): Promise<ContentInfo>;
}

/** The largest blob `put` takes: manifests, indexes and image configs fit. */
export const maxPutBytes = 4 * 1024 * 1024;

/** Watches and cancels ingests in progress. */
export interface IngestManager {
  ingestStatus(ref: string): Promise<IngestStatus>;
  listIngests(): Promise<IngestStatus[]>;
  /** Discards an ingest that no writer holds. */
  abortIngest(ref: string): Promise<void>;
}

/** Lists, relabels and deletes blobs. */
export interface ContentManager {
  list(): Promise<ContentInfo[]>;
  updateLabels(digest: string, labels: Labels): Promise<ContentInfo>;
  delete(digest: string): Promise<void>;
}

export type ContentStore = ContentProvider & ContentIngester & IngestManager & ContentManager;

export type SnapshotKind = 'active' | 'committed' | 'view';

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  /** The committed snapshot this one is built on, if any. */
  parent?: string;
  labels: Labels;
  createdAt: Date;
}

/** A mount to make a snapshot's filesystem appear (as in an OCI runtime spec's `mounts`). */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** Where a mount of a snapshot writes: a writable bind mount's source, an overlay's upper directory; undefined for a read-only mount. */
export function writableDir(m: Mount): string | undefined {
  if (m.type === 'bind') return m.options.includes('ro') ? undefined : m.source;
  return m.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
}

export interface Usage {
  bytes: number;
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Labels;
  leaseId?: string;
}

/**
 * Snapshots on overlayfs, as containerd defines them: a committed snapshot
 * is an immutable layer named by its chain ID; `prepare` makes an active
 * (writable) snapshot on a committed parent, `view` a read-only one; `commit`
 * turns an active snapshot into a committed one under a new name. A snapshot
 * with children cannot be removed.
 */
export interface Snapshotter {
  stat(key: string): Promise<SnapshotInfo>;
  list(): Promise<SnapshotInfo[]>;
  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]>;
  mounts(key: string): Promise<Mount[]>;
  /**
   * Commits an active snapshot as `name`. With `parent`, a snapshot prepared
   * without one (a layer unpacked on its own, in parallel with the layers
   * below it) is committed on top of that committed parent.
   */
  commit(name: string, key: string, options?: SnapshotOptions & { parent?: string }): Promise<SnapshotInfo>;
  remove(key: string): Promise<void>;
  /** Bytes and inodes the snapshot's own layer uses (hard links counted once). */
  usage(key: string): Promise<Usage>;
}

export interface ImageName {
  name: string;
  kind: 'tag' | 'digest';
}

export interface ImageRecord {
  /** The config digest. */
  id: string;
  manifestDigest: string;
  size: number;
  /** Chain ID of the top layer's committed snapshot. */
  topChainId: string;
  pinned: boolean;
  names: ImageName[];
  createdAt: Date;
}

/** Image records: an image by id with the names it is known by. */
export interface ImageStore {
  /** Creates or updates an image; a name it takes is moved off any other image. */
  putImage(record: Omit<ImageRecord, 'createdAt'>): Promise<ImageRecord>;
  /**
   * By id, by name, or by a unique prefix of an id (lowercase hex, with or
   * without its `sha256:`, as crictl shows image ids): NotFoundError when
   * none, FailedPreconditionError for a prefix of several ids.
   */
  getImage(ref: string): Promise<ImageRecord>;
  listImages(): Promise<ImageRecord[]>;
  /**
   * Removes one name. The image goes with its last tag, its digest names
   * with it (as containerd, CRI-O and Docker remove an image with its last
   * tag); one without tags goes with its last digest name.
   */
  removeImageName(name: string): Promise<{ imageRemoved: boolean }>;
  deleteImage(ref: string): Promise<void>;
}

export type LeaseResourceKind = 'blob' | 'snapshot' | 'ingest';

export interface LeaseResource {
  kind: LeaseResourceKind;
  ref: string;
}

export interface Lease {
  id: string;
  expiresAt?: Date;
  labels: Labels;
  createdAt: Date;
  resources: LeaseResource[];
}

/** Leases keep what they hold from garbage collection until deleted or expired. */
export interface LeaseManager {
  createLease(options?: { id?: string; expiresAt?: Date; labels?: Labels }): Promise<Lease>;
  deleteLease(id: string): Promise<void>;
  listLeases(): Promise<Lease[]>;
  addLeaseResource(id: string, resource: LeaseResource): Promise<void>;
  removeLeaseResource(id: string, resource: LeaseResource): Promise<void>;
}

export interface GcResult {
  removedBlobs: string[];
  removedSnapshots: string[];
  removedIngests: string[];
  expiredLeases: string[];
}

export interface FsUsage {
  mountpoint: string;
  content: Usage;
  snapshots: Usage;
  timestamp: Date;
}

/**
 * Labels through which blobs reference what they keep alive: a manifest
 * labels its config and layers `berth.gc.ref.content.<n>`, and a layer blob its
 * snapshot `berth.gc.ref.snapshot`.
 */
export const gcRefContentPrefix = 'berth.gc.ref.content.';
export const gcRefSnapshot = 'berth.gc.ref.snapshot';

export interface Store extends ImageStore, LeaseManager {
  content: ContentStore;
  snapshots: Snapshotter;
  /** Mark and sweep from images, leases and active/view snapshots. */
  garbageCollect(): Promise<GcResult>;
  fsUsage(): Promise<FsUsage>;
  close(): Promise<void>;
}
