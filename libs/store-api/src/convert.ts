import type { storeV1 } from '@berth/proto';
import type { ContentInfo, FsUsage, ImageRecord, IngestStatus, Lease, Mount, SnapshotInfo, SnapshotKind, Usage, WriterOptions } from './types.js';

/** Unix nanoseconds ↔ Date. */
export const toNanos = (d: Date): bigint => BigInt(d.getTime()) * 1_000_000n;
export const fromNanos = (n: bigint): Date => new Date(Number(n / 1_000_000n));

export const contentToWire = (c: ContentInfo): storeV1.ContentInfo => ({ digest: c.digest, size: BigInt(c.size), labels: c.labels, createdAt: toNanos(c.createdAt) });
export const contentFromWire = (c: storeV1.ContentInfo): ContentInfo => ({ digest: c.digest, size: Number(c.size), labels: c.labels, createdAt: fromNanos(c.createdAt) });

export const ingestToWire = (s: IngestStatus): storeV1.IngestStatusResponse => ({
  ref: s.ref,
  offset: BigInt(s.offset),
  total: BigInt(s.total),
  expectedDigest: s.expectedDigest,
  startedAt: toNanos(s.startedAt),
  updatedAt: toNanos(s.updatedAt),
});
export const ingestFromWire = (s: storeV1.IngestStatusResponse): IngestStatus => ({
  ref: s.ref,
  offset: Number(s.offset),
  total: Number(s.total),
  expectedDigest: s.expectedDigest,
  startedAt: fromNanos(s.startedAt),
  updatedAt: fromNanos(s.updatedAt),
});

export const snapshotToWire = (s: SnapshotInfo): storeV1.SnapshotInfo => ({ key: s.key, kind: s.kind, parent: s.parent ?? '', labels: s.labels, createdAt: toNanos(s.createdAt) });
export const snapshotFromWire = (s: storeV1.SnapshotInfo): SnapshotInfo => ({
  key: s.key,
  kind: s.kind as SnapshotKind,
  ...(s.parent === '' ? {} : { parent: s.parent }),
  labels: s.labels,
  createdAt: fromNanos(s.createdAt),
});

export const mountsToWire = (m: Mount[]): storeV1.MountList => ({ mounts: m.map((x) => ({ type: x.type, source: x.source, options: x.options })) });
export const mountsFromWire = (m: storeV1.MountList): Mount[] => m.mounts.map((x) => ({ type: x.type, source: x.source, options: x.options }));

export const usageToWire = (u: Usage): storeV1.Usage => ({ bytes: BigInt(u.bytes), inodes: BigInt(u.inodes) });
export const usageFromWire = (u: storeV1.Usage | undefined): Usage => ({ bytes: Number(u?.bytes ?? 0n), inodes: Number(u?.inodes ?? 0n) });

export const imageToWire = (i: ImageRecord): storeV1.ImageRecord => ({
  id: i.id,
  manifestDigest: i.manifestDigest,
  size: BigInt(i.size),
  topChainId: i.topChainId,
  pinned: i.pinned,
  names: i.names.map((n) => ({ name: n.name, kind: n.kind })),
  createdAt: toNanos(i.createdAt),
});
export const imageFromWire = (i: storeV1.ImageRecord): ImageRecord => ({
  id: i.id,
  manifestDigest: i.manifestDigest,
  size: Number(i.size),
  topChainId: i.topChainId,
  pinned: i.pinned,
  names: i.names.map((n) => ({ name: n.name, kind: n.kind === 'digest' ? 'digest' : 'tag' })),
  createdAt: fromNanos(i.createdAt),
});

export const leaseToWire = (l: Lease): storeV1.Lease => ({
  id: l.id,
  expiresAt: l.expiresAt === undefined ? 0n : toNanos(l.expiresAt),
  labels: l.labels,
  createdAt: toNanos(l.createdAt),
  resources: l.resources.map((r) => ({ kind: r.kind, ref: r.ref })),
});
export const leaseFromWire = (l: storeV1.Lease): Lease => ({
  id: l.id,
  ...(l.expiresAt === 0n ? {} : { expiresAt: fromNanos(l.expiresAt) }),
  labels: l.labels,
  createdAt: fromNanos(l.createdAt),
  resources: l.resources.map((r) => ({ kind: r.kind as Lease['resources'][number]['kind'], ref: r.ref })),
});

export const fsUsageToWire = (u: FsUsage): storeV1.FsUsageResponse => ({
  mountpoint: u.mountpoint,
  content: usageToWire(u.content),
  snapshots: usageToWire(u.snapshots),
  timestamp: toNanos(u.timestamp),
});
export const fsUsageFromWire = (u: storeV1.FsUsageResponse): FsUsage => ({
  mountpoint: u.mountpoint,
  content: usageFromWire(u.content),
  snapshots: usageFromWire(u.snapshots),
  timestamp: fromNanos(u.timestamp),
});

/** The options of an ingest (an Ingest open or an ImportContent) on the wire. */
export const writerOptionsToWire = (o: WriterOptions, local = false): storeV1.IngestOpen => ({
  ref: o.ref,
  expectedDigest: o.expectedDigest,
  expectedSize: BigInt(o.expectedSize ?? 0),
  labels: o.labels ?? {},
  leaseId: o.leaseId ?? '',
  local,
});
export const writerOptionsFromWire = (o: storeV1.IngestOpen): WriterOptions => ({
  ref: o.ref,
  expectedDigest: o.expectedDigest,
  expectedSize: Number(o.expectedSize),
  labels: o.labels,
  ...(o.leaseId === '' ? {} : { leaseId: o.leaseId }),
});
