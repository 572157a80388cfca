import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FileHandle } from 'node:fs/promises';
import { dataLength, writeAllAt } from './file-io.js';

test('writeAllAt writes pieces at a position, and goes on after short writes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-writeall-'));
  try {
    const path = join(dir, 'f');
    const handle = await open(path, 'w+');
    const pieces = [Buffer.from('0123'), Buffer.from('456789'), Buffer.from('abc')];
    // A file that takes at most 5 bytes per call, as a filesystem may near its limits.
    let calls = 0;
    const stingy = {
      write: (b: Uint8Array, off: number, len: number, pos: number) => (calls++, handle.write(b, off, Math.min(len, 5), pos)),
      writev: (bufs: Uint8Array[], pos: number) => {
        calls++;
        const first = Buffer.concat(bufs).subarray(0, 5);
        return handle.write(first, 0, first.length, pos).then((r) => ({ bytesWritten: r.bytesWritten, buffers: bufs }));
      },
    } as unknown as FileHandle;
    await handle.write(Buffer.from('xx'), 0, 2, 0);
    await writeAllAt(stingy, pieces, 2);
    assert.equal(calls, 3);
    await writeAllAt(handle, Buffer.from('!'), 2 + dataLength(pieces));
    await handle.close();
    assert.equal(await readFile(path, 'utf8'), 'xx0123456789abc!');
    assert.equal(dataLength([]), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
