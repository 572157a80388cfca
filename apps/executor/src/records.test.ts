import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RecordStore } from './records.js';

test('a write in progress or late never brings back a record that was moved or deleted', async () => {
  const dir = mkdtempSync('/tmp/berth-records-');
  try {
    const records = new RecordStore<{ id: string; n: number }>(join(dir, 'records'));
    const removals = new RecordStore<{ id: string; n: number }>(join(dir, 'removals'));
    await records.load();
    await removals.load();
    const r = { id: 'a'.repeat(64), n: 1 };
    await records.put(r);
    // A status refresh writing the record while a removal moves it: the move waits for the write, and wins.
    const writing = records.put({ ...r, n: 2 });
    const moving = records.moveTo(r.id, removals);
    await Promise.all([writing, moving]);
    await records.put({ ...r, n: 3 }); // a teardown finishing later
    assert.equal(records.get(r.id), undefined);
    assert.ok(!existsSync(join(dir, 'records', `${r.id}.json`)), 'no file left behind in the records');
    assert.equal(removals.get(r.id)?.n, 2);
    const reloaded = new RecordStore<{ id: string; n: number }>(join(dir, 'records'));
    await reloaded.load();
    assert.equal(reloaded.items.size, 0, 'nothing comes back after a restart either');
    await removals.delete(r.id);
    await removals.put({ ...r, n: 4 });
    assert.equal(removals.get(r.id), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
