import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDatabase } from '@berth/db';
import { LocalStore } from './local-store.js';

const worker = join(import.meta.dirname, 'crash-worker.js');

/** Starts the worker, lets it run for `ms` after it is ready, then kills it with SIGKILL. */
async function runAndKill(dir: string, seed: number, ms: number): Promise<void> {
  const child = spawn(process.execPath, [worker, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`worker exited early (${code}): ${err}`)));
  });
  await new Promise((r) => setTimeout(r, ms));
  assert.equal(child.exitCode, null, `the worker failed by itself: ${err}`);
  child.kill('SIGKILL');
  await exited;
}

test('kill -9 at random points of ingests, snapshot work and GC leaves nothing inconsistent after restart', async () => {
  const dir = mkdtempSync('/var/tmp/berth-crash-');
  try {
    let repairs = 0;
    /** Blobs and snapshots found after each round: the state a round may end empty (GC ran last), not every round. */
    let found = 0;
    for (let round = 0; round < 20; round++) {
      await runAndKill(dir, round + 1, 150 + ((round * 97) % 500));
      // Restart: open (which repairs), then check every invariant.
      const db = await openDatabase(`file:${join(dir, 'berth.db')}`);
      const { store, repaired } = await LocalStore.open({ db: db.prisma, stateDir: dir, usageCacheMs: 0 });
      repairs += Object.values(repaired).reduce((a, b) => a + b, 0);
      try {
        const blobs = await store.content.list();
        const blobDir = join(dir, 'content/blobs/sha256');
        const files = new Set(readdirSync(blobDir));
        for (const b of blobs) {
          const hex = b.digest.slice('sha256:'.length);
          assert.ok(files.has(hex), `round ${round}: record ${b.digest} has its file`);
          const bytes = readFileSync(join(blobDir, hex));
          assert.equal(bytes.length, b.size, `round ${round}: ${b.digest} size`);
          assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `round ${round}: ${b.digest} content matches its digest`);
        }
        assert.equal(files.size, blobs.length, `round ${round}: no blob file without a record`);

        const snaps = await store.snapshots.list();
        const rows = await db.prisma.snapshot.findMany();
        const dirs = new Set(readdirSync(join(dir, 'snapshots')));
        for (const r of rows) assert.ok(existsSync(join(dir, 'snapshots', String(r.dirId), 'fs')), `round ${round}: snapshot ${r.key} has its directory`);
        assert.equal(dirs.size, rows.length, `round ${round}: no snapshot directory without a record`);
        for (const s of snaps) if (s.parent !== undefined) assert.ok(snaps.some((p) => p.key === s.parent && p.kind === 'committed'), `round ${round}: ${s.key}'s parent exists`);

        for (const ingest of await store.content.listIngests()) {
          const size = statSync(join(store.content.ingestDir(ingest.ref), 'data')).size;
          assert.equal(ingest.offset, size, `round ${round}: ingest ${ingest.ref} reports its real offset`);
        }
        const usage = await store.fsUsage();
        assert.equal(usage.content.bytes, blobs.reduce((a, b) => a + b.size, 0), `round ${round}: content usage counts each blob once`);
        assert.equal(usage.content.inodes, blobs.length);
        found += blobs.length + rows.length;
      } finally {
        await store.close();
        await db.close();
      }
    }
    // The loop must actually have produced state (and, usually, something to repair).
    assert.ok(found > 0, 'the worker did real work');
    process.stdout.write(`# crash test: ${repairs} repairs over 20 rounds; ${found} blobs and snapshots found after the rounds\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
