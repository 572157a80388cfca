import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { ContainerEvent } from '@berth/bus';
import { criV1 } from '@berth/proto';
import type { Backends } from '../backends.js';
import { createGetContainerEventsHandler } from './events.js';

test('an event read after its container is gone still carries the status from when it happened', async () => {
  let publish: (e: ContainerEvent) => void = () => undefined;
  // The executor no longer knows the container: the answer must come from the event itself.
  const executor = new Proxy({}, { get: () => () => Promise.reject(new Error('the executor was asked')) });
  const backends = { executor, watchContainerEvents: (f: (e: ContainerEvent) => void) => ((publish = f), () => undefined) } as unknown as Backends;
  const abort = new AbortController();
  const sent: criV1.ContainerEventResponse[] = [];
  const running = createGetContainerEventsHandler(backends)(
    {},
    async (m) => {
      sent.push(m);
      if (sent.length === 2) abort.abort();
    },
    { signal: abort.signal } as never,
  );
  const status = criV1.ContainerStatus.fromPartial({ id: 'c1', state: criV1.ContainerState.CONTAINER_EXITED, exitCode: 137, reason: 'OOMKilled', finishedAt: 1_700_000_000_000_000_000n, metadata: { name: 'hog', attempt: 0 } });
  const pod = criV1.PodSandboxStatus.fromPartial({ id: 'p1', state: criV1.PodSandboxState.SANDBOX_READY, metadata: { name: 'web', uid: 'u', namespace: 'default', attempt: 0 } });
  publish({ containerId: 'c1', podSandboxId: 'p1', type: 'stopped', at: '5', podSandboxStatus: criV1.PodSandboxStatus.toJSON(pod), containerStatus: criV1.ContainerStatus.toJSON(status) });
  publish({ containerId: 'p1', podSandboxId: 'p1', type: 'deleted', at: '6' });
  await running;
  assert.equal(sent.length, 2);
  assert.equal(sent[0]!.containerEventType, criV1.ContainerEventType.CONTAINER_STOPPED_EVENT);
  assert.equal(sent[0]!.createdAt, 5n);
  assert.deepEqual(sent[0]!.containersStatuses, [status]);
  assert.deepEqual(sent[0]!.podSandboxStatus, pod);
  assert.equal(sent[1]!.containerEventType, criV1.ContainerEventType.CONTAINER_DELETED_EVENT);
  assert.equal(sent[1]!.podSandboxStatus, undefined);
  assert.deepEqual(sent[1]!.containersStatuses, []);
});
