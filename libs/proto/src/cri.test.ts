import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { criV1, filterContainers, filterPods } from './index.js';

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

test('list filters: prefixes, state and labels; a filter that selects everything hands back the list itself', () => {
  const C = criV1.ContainerState;
  const containers = [
    criV1.Container.fromPartial({ id: 'abc1', podSandboxId: 'p1', state: C.CONTAINER_RUNNING, labels: { app: 'web' } }),
    criV1.Container.fromPartial({ id: 'abd2', podSandboxId: 'p2', state: C.CONTAINER_EXITED, labels: { app: 'db' } }),
  ];
  const none = criV1.ContainerFilter.fromPartial({});
  assert.equal(filterContainers(containers, undefined), containers);
  assert.equal(filterContainers(containers, none), containers);
  assert.deepEqual(filterContainers(containers, { ...none, id: 'abc' }).map((c) => c.id), ['abc1']);
  assert.deepEqual(filterContainers(containers, { ...none, podSandboxId: 'p2' }).map((c) => c.id), ['abd2']);
  assert.deepEqual(filterContainers(containers, { ...none, state: { state: C.CONTAINER_RUNNING } }).map((c) => c.id), ['abc1']);
  assert.deepEqual(filterContainers(containers, { ...none, labelSelector: { app: 'db' } }).map((c) => c.id), ['abd2']);
  const pods = [criV1.PodSandbox.fromPartial({ id: 'p1', state: criV1.PodSandboxState.SANDBOX_READY, labels: { a: '1' } }), criV1.PodSandbox.fromPartial({ id: 'p2', state: criV1.PodSandboxState.SANDBOX_NOTREADY, labels: {} })];
  const noPod = criV1.PodSandboxFilter.fromPartial({});
  assert.equal(filterPods(pods, noPod), pods);
  assert.deepEqual(filterPods(pods, { ...noPod, labelSelector: { a: '1' } }).map((p) => p.id), ['p1']);
  assert.deepEqual(filterPods(pods, { ...noPod, state: { state: criV1.PodSandboxState.SANDBOX_NOTREADY } }).map((p) => p.id), ['p2']);
});
