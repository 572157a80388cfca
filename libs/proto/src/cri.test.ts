import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { criV1 } from './index.js';

test('the CRI services carry every RPC under its runtime.v1 path', () => {
  const runtime: string[] = Object.values(criV1.RuntimeServiceService).map((m) => m.path);
  const image: string[] = Object.values(criV1.ImageServiceService).map((m) => m.path);
  assert.equal(runtime.length, 37);
  assert.equal(image.length, 6);
  for (const path of ['/runtime.v1.RuntimeService/RunPodSandbox', '/runtime.v1.RuntimeService/GetContainerEvents', '/runtime.v1.RuntimeService/UpdatePodSandboxResources']) assert.ok(runtime.includes(path), path);
  assert.ok(image.includes('/runtime.v1.ImageService/ImageFsInfo'));
  assert.equal(criV1.RuntimeServiceService.getContainerEvents.responseStream, true);
});

test('nanosecond timestamps (int64) survive encoding exactly', () => {
  const createdAt = 1_764_345_600_123_456_789n; // beyond 2^53: a number would lose the last digits
  const bytes = criV1.ContainerStatus.encode({ ...criV1.ContainerStatus.fromPartial({ id: 'c1' }), createdAt }).finish();
  assert.equal(criV1.ContainerStatus.decode(bytes).createdAt, createdAt);
});
