import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { storeV1 } from '@berth/proto';
import { encodeIngestRequest } from './index.js';

test('the hand-framed ingest write encodes exactly as the generated encoder does', () => {
  for (const [offset, size] of [[0, 0], [0, 5], [1, 1], [127, 128], [300, 70_000], [2 ** 40 + 3, 1024 * 1024]] as const) {
    const message: storeV1.IngestRequest = { write: { offset: BigInt(offset), data: randomBytes(size) } };
    const fast = encodeIngestRequest(message);
    assert.deepEqual(fast, storeV1.StoreService.ingest.requestSerialize(message), `offset ${offset}, ${size} bytes`);
    const back = storeV1.IngestRequest.decode(fast);
    assert.equal(back.write?.offset, BigInt(offset));
    assert.deepEqual(Buffer.from(back.write!.data), message.write!.data);
  }
  const open: storeV1.IngestRequest = { open: { ref: 'r', expectedDigest: 'sha256:x', expectedSize: 3n, labels: {}, leaseId: '', local: true } };
  assert.deepEqual(encodeIngestRequest(open), storeV1.StoreService.ingest.requestSerialize(open));
});
