// Existence checks on the store's hot paths (every pull and container
// create runs several), as single raw statements: Prisma's model queries
// cost about three times the CPU of a raw one here, and a count needs a
// sub-select. The SQL is the same for SQLite and PostgreSQL.
import type { Db } from '@berth/db';

const any = (rows: unknown[]): boolean => rows.length > 0;

export async function blobExists(db: Db, digest: string): Promise<boolean> {
  return any(await db.$queryRaw<unknown[]>`SELECT 1 AS one FROM blobs WHERE digest = ${digest} LIMIT 1`);
}

export async function snapshotExists(db: Db, key: string): Promise<boolean> {
  return any(await db.$queryRaw<unknown[]>`SELECT 1 AS one FROM snapshots WHERE key = ${key} LIMIT 1`);
}

export async function leaseExists(db: Db, id: string): Promise<boolean> {
  return any(await db.$queryRaw<unknown[]>`SELECT 1 AS one FROM leases WHERE id = ${id} LIMIT 1`);
}

/** The highest snapshot directory number in use (0 for none). */
export async function lastSnapshotDir(db: Db): Promise<number> {
  const rows = await db.$queryRaw<{ last: number | bigint | null }[]>`SELECT MAX(dir_id) AS last FROM snapshots`;
  return Number(rows[0]?.last ?? 0);
}
