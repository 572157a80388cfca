import { strict as assert } from 'node:assert';
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { freshPostgresDatabase, postgresTestUrl } from '@berth/testing';
import { dialectOf, listMigrations, openDatabase } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-db-'));

test('migrations apply once, even when two openers race', async () => {
  const url = `file:${join(dir, 'race.db')}`;
  const [a, b] = await Promise.all([openDatabase(url), openDatabase(url)]);
  const expected = listMigrations('sqlite').length;
  assert.equal(a.appliedMigrations, expected);
  assert.equal(b.appliedMigrations, expected);
  await Promise.all([a.close(), b.close()]);
  const raw = new BetterSqlite3(join(dir, 'race.db'));
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal((raw.prepare('SELECT COUNT(*) AS n FROM "_berth_migrations"').get() as { n: number }).n, expected);
  raw.close();
});

const postgresAdmin = postgresTestUrl();
const dropAfter: Array<() => Promise<void>> = [];
after(async () => {
  for (const drop of dropAfter) await drop();
});

async function freshPostgresUrl(admin: string): Promise<string> {
  const db = await freshPostgresDatabase(admin, 'berth_db_test');
  dropAfter.push(db.drop);
  return db.url;
}

const targets: Array<[string, () => Promise<string>]> = [['sqlite', async () => `file:${join(dir, 'models.db')}`]];
if (postgresAdmin !== undefined) targets.push(['postgresql', () => freshPostgresUrl(postgresAdmin)]);

for (const [dialect, makeUrl] of targets) test(`the prisma client reads and writes every model through the migrated tables (${dialect})`, async () => {
  const url = await makeUrl();
  const db = await openDatabase(url);
  assert.equal(db.dialect, dialect);
  const again = await openDatabase(url);
  assert.equal(again.appliedMigrations, db.appliedMigrations, 'reopening applies nothing new');
  await again.close();
  const p = db.prisma;
  try {
    await p.blob.create({ data: { digest: 'sha256:aa', size: 5_000_000_000n, mediaType: 'x' } });
    assert.equal((await p.blob.findUniqueOrThrow({ where: { digest: 'sha256:aa' } })).size, 5_000_000_000n);
    await p.snapshot.create({ data: { key: 'base', dirId: 1, kind: 'committed' } });
    await p.snapshot.create({ data: { key: 'child', dirId: 2, kind: 'active', parent: 'base' } });
    await assert.rejects(p.snapshot.delete({ where: { key: 'base' } }), 'a parent with children cannot be deleted');
    await p.image.create({ data: { id: 'sha256:cfg', manifestDigest: 'sha256:m', size: 10n, names: { create: [{ name: 'docker.io/library/busybox:latest', kind: 'tag' }] } } });
    const image = await p.image.findUniqueOrThrow({ where: { id: 'sha256:cfg' }, include: { names: true } });
    assert.deepEqual(image.names.map((n) => n.name), ['docker.io/library/busybox:latest']);
    assert.ok(image.createdAt instanceof Date);
    await p.image.delete({ where: { id: 'sha256:cfg' } });
    assert.equal(await p.imageName.count(), 0, 'names go with their image');
    await p.lease.create({ data: { id: 'pull-1', resources: { create: [{ kind: 'blob', ref: 'sha256:aa' }] } } });
    assert.equal(await p.leaseResource.count({ where: { kind: 'blob', ref: 'sha256:aa' } }), 1);
  } finally {
    await db.close();
  }
});

test('database URLs name their dialect', () => {
  assert.equal(dialectOf('file:/var/lib/berth/berth.db'), 'sqlite');
  assert.equal(dialectOf('postgresql://berth@localhost/berth'), 'postgresql');
  assert.throws(() => dialectOf('mysql://x'), /file: .* postgresql:\/\//);
});

test('the SQLite database and its -wal and -shm files are readable by their owner only, old ones narrowed at open', async () => {
  const path = join(dir, 'private.db');
  const db = await openDatabase(`file:${path}`);
  await db.prisma.$queryRawUnsafe('SELECT 1');
  for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  await db.close();
  const old = join(dir, 'old.db');
  writeFileSync(old, '');
  chmodSync(old, 0o644);
  const again = await openDatabase(`file:${old}`);
  assert.equal(statSync(old).mode & 0o777, 0o600);
  await again.close();
});
