import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
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

test('records are found by full id or unique prefix; Stop and Remove take an id of nothing as done, but not a prefix of nothing', async () => {
  const dir = mkdtempSync('/tmp/berth-records-');
  try {
    const records = new RecordStore<{ id: string }>(join(dir, 'records'));
    await records.load();
    const [a, b, c] = ['53f94b3d1cb9', '53f9aa', '7c'].map((start) => ({ id: start + '0'.repeat(64 - start.length) }));
    for (const r of [a!, b!, c!]) await records.put(r);
    // containerd resolves a unique prefix of an id in every call (its truncindex).
    assert.equal(records.lookup('53f94b3d1cb9', 'pod sandbox'), a);
    assert.equal(records.lookup(c!.id, 'pod sandbox'), c);
    assert.equal(records.lookup('7', 'pod sandbox'), c);
    assert.equal(records.idOf('53f94b3d1cb9', 'pod sandbox'), a!.id);
    // An ambiguous prefix is refused wherever it is used.
    assert.throws(() => records.lookup('53f9', 'pod sandbox'), (e: Error) => isCategory(e, 'failed-precondition'));
    assert.throws(() => records.idOf('53f9', 'pod sandbox'), (e: Error) => isCategory(e, 'failed-precondition'));
    // An unknown id: the kubelet's retry of a removal (a full id) or critest's made-up one (a UUID) succeeds, as containerd answers it.
    assert.equal(records.lookup('f'.repeat(64), 'pod sandbox'), undefined);
    assert.equal(records.idOf('f'.repeat(64), 'pod sandbox'), 'f'.repeat(64));
    assert.equal(records.idOf('3b241101-e2bb-4255-8caf-4136c2a0f8b3', 'pod sandbox'), '3b241101-e2bb-4255-8caf-4136c2a0f8b3');
    // An unknown prefix names nothing to stop or remove: not found, not a success.
    assert.throws(() => records.idOf('ab12', 'pod sandbox'), (e: Error) => isCategory(e, 'not-found') && /pod sandbox "ab12" not found/.test(e.message));
    assert.throws(() => records.idOf('', 'pod sandbox'), (e: Error) => isCategory(e, 'invalid-argument'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
