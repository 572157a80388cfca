import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type pg from 'pg';
import { InternalError } from '@berth/errors';
import type { Dialect } from './url.js';

/** Where the versioned SQL files are: dist/migrations/<dialect>/NNNN_name.sql. */
const migrationsDir = join(import.meta.dirname, 'migrations');

export interface Migration {
  id: string;
  sql: string;
}

/** The migrations of a dialect, in order of their numeric prefix. */
export function listMigrations(dialect: Dialect): Migration[] {
  const dir = join(migrationsDir, dialect);
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ id: f.replace(/\.sql$/, ''), sql: readFileSync(join(dir, f), 'utf8') }));
}

const ledger = 'CREATE TABLE IF NOT EXISTS "_berth_migrations" ("id" TEXT NOT NULL PRIMARY KEY, "applied_at" TEXT NOT NULL)';

/**
 * Applies pending migrations to a SQLite database, each in its own
 * transaction together with its ledger row, under an IMMEDIATE lock so that
 * two services starting at once apply each migration exactly once. Returns
 * the number of migrations applied in all.
 */
export function migrateSqlite(db: BetterSqlite3.Database, migrations: Migration[]): number {
  db.exec(ledger);
  for (const m of migrations) {
    const apply = db.transaction(() => {
      const done = db.prepare('SELECT 1 FROM "_berth_migrations" WHERE "id" = ?').get(m.id);
      if (done) return;
      db.exec(m.sql);
      db.prepare('INSERT INTO "_berth_migrations" ("id", "applied_at") VALUES (?, ?)').run(m.id, new Date().toISOString());
    });
    apply.immediate();
  }
  return (db.prepare('SELECT COUNT(*) AS n FROM "_berth_migrations"').get() as { n: number }).n;
}

/** PostgreSQL advisory lock key for Berth's migrations ("berth" in ASCII). */
const lockKey = 0x6265727468;

/** As migrateSqlite, for PostgreSQL, serialised with an advisory lock. */
export async function migratePostgres(client: pg.Client, migrations: Migration[]): Promise<number> {
  await client.query('SELECT pg_advisory_lock($1)', [lockKey]);
  try {
    await client.query(ledger);
    for (const m of migrations) {
      const done = await client.query('SELECT 1 FROM "_berth_migrations" WHERE "id" = $1', [m.id]);
      if (done.rowCount !== 0) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO "_berth_migrations" ("id", "applied_at") VALUES ($1, $2)', [m.id, new Date().toISOString()]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new InternalError(`apply migration ${m.id}`, { cause: err });
      }
    }
    const count = await client.query<{ n: string }>('SELECT COUNT(*) AS n FROM "_berth_migrations"');
    return Number(count.rows[0]?.n ?? 0);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [lockKey]);
  }
}
