// Drives a local store with a random mix of operations for ever, for the
// crash test to kill at a random moment. Usage: node crash-worker.js <stateDir> <seed>
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '@berth/db';
import { sha256Digest } from '@berth/spec';
import { writableDir } from '@berth/store-api/testsuite';
import { LocalStore } from './local-store.js';

const [dir, seedArg] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: crash-worker <stateDir> <seed>');
let seed = Number(seedArg ?? 1);
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};

const db = await openDatabase(`file:${join(dir, 'berth.db')}`);
const { store } = await LocalStore.open({ db: db.prisma, stateDir: dir, staleIngestMs: 0 });
process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  try {
    switch (rand(7)) {
      case 0:
      case 1: {
        const data = randomBytes(1 + rand(3 * 1024 * 1024));
        const w = await store.content.writer({ ref: `ingest-${rand(5)}`, expectedDigest: sha256Digest(data), expectedSize: data.length });
        const from = w.offset() <= data.length ? w.offset() : 0;
        const half = from + Math.floor((data.length - from) / 2);
        await w.write(data.subarray(from, half));
        if (rand(3) === 0) {
          await w.close(); // leave it for a resume
          break;
        }
        await w.write(data.subarray(half));
        await w.commit({ round: String(i) });
        break;
      }
      case 2: {
        const key = `active-${i}`;
        const parents = (await store.snapshots.list()).filter((s) => s.kind === 'committed');
        const parent = parents.length > 0 && rand(2) === 0 ? parents[rand(parents.length)]!.key : undefined;
        const upper = writableDir(await store.snapshots.prepare(key, parent));
        for (let f = 0; f < 20; f++) {
          mkdirSync(join(upper, `d${f % 3}`), { recursive: true });
          writeFileSync(join(upper, `d${f % 3}`, `f${f}`), randomBytes(rand(20000)));
        }
        if (rand(2) === 0) await store.snapshots.commit(`sha256:${randomBytes(32).toString('hex')}`, key);
        break;
      }
      case 3: {
        const snaps = await store.snapshots.list();
        const leaf = snaps.find((s) => !snaps.some((c) => c.parent === s.key));
        if (leaf) await store.snapshots.remove(leaf.key);
        break;
      }
      case 4: {
        const blobs = await store.content.list();
        if (blobs.length > 0) await store.content.delete(blobs[rand(blobs.length)]!.digest);
        break;
      }
      case 5: {
        const blobs = await store.content.list();
        const b = blobs[rand(Math.max(blobs.length, 1))];
        if (b) await store.putImage({ id: b.digest, manifestDigest: b.digest, size: b.size, topChainId: '', pinned: false, names: [{ name: `example.com/crash:${rand(4)}`, kind: 'tag' }] });
        break;
      }
      default:
        await store.garbageCollect();
    }
  } catch (err) {
    // Expected refusals (a busy ref, a parent with children, ...) are part of the mix.
    const category = (err as { category?: string }).category;
    if (category === undefined || category === 'internal') throw err;
  }
}
