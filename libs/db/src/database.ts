import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { UnavailableError } from '@berth/errors';
import { PrismaClient as PostgresClient } from './generated/postgresql/client.js';
import { PrismaClient as SqliteClient } from './generated/sqlite/client.js';
import { listMigrations, migratePostgres, migrateSqlite } from './migrate.js';
import { dialectOf, sqlitePath, type Dialect } from './url.js';

/**
 * The Prisma client type every service programs against. The PostgreSQL
 * client is generated from the same models, so it has the same shape.
 */
export type Db = SqliteClient;

export interface Database {
  prisma: Db;
  dialect: Dialect;
  /** How many migrations the database has had applied. */
  appliedMigrations: number;
  close(): Promise<void>;
}

/**
 * Opens the database at `url`, applying any pending migrations first. SQLite
 * runs in WAL mode with a busy timeout, so several services can share one
 * file; a PostgreSQL URL gives a pooled connection.
 */
export async function openDatabase(url: string): Promise<Database> {
  const dialect = dialectOf(url);
  if (dialect === 'sqlite') {
    const path = sqlitePath(url);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // The database holds every image's and snapshot's metadata: only its owner may read it.
    // SQLite gives the -wal and -shm files the database file's mode, so they follow.
    const previous = process.umask(0o077);
    let raw: BetterSqlite3.Database;
    try {
      raw = new BetterSqlite3(path, { timeout: 10_000 });
    } finally {
      process.umask(previous);
    }
    let applied: number;
    try {
      restrictToOwner(path);
      raw.pragma('journal_mode = WAL');
      raw.pragma('foreign_keys = ON');
      applied = migrateSqlite(raw, listMigrations('sqlite'));
    } finally {
      raw.close();
    }
    const prisma = new SqliteClient({ adapter: new PrismaBetterSqlite3({ url: path, timeout: 10_000 }) });
    return { prisma, dialect, appliedMigrations: applied, close: () => prisma.$disconnect() };
  }
  const client = new pg.Client({ connectionString: url });
  let applied: number;
  try {
    await client.connect();
    applied = await migratePostgres(client, listMigrations('postgresql'));
  } catch (err) {
    throw new UnavailableError('open PostgreSQL database', { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
  const prisma = new PostgresClient({ adapter: new PrismaPg({ connectionString: url }) }) as unknown as Db;
  return { prisma, dialect, appliedMigrations: applied, close: () => prisma.$disconnect() };
}

/** Narrows a database made before Berth created it 0600 (and its -wal and -shm files) to its owner. */
function restrictToOwner(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
