import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { ContainerEvent } from '@berth/bus';
import { criV1 } from '@berth/proto';
import type { Backends } from './backends.js';
import { forwardToExecutor } from './cri-service.js';
import { RuntimeView } from './runtime-view.js';

/** An executor whose answers come when the test says, counting the calls; and the event feed. */
function fakeBackends() {
  const calls: string[] = [];
  const waiting: (() => void)[] = [];
  let state = 'running';
  let listen: (e: ContainerEvent) => void = () => undefined;
  /** Set: StartContainer fails. */
  const fake = { fail: false };
  const answer = <T>(name: string, value: () => T) =>
    new Promise<T>((resolve) => {
      calls.push(name);
      waiting.push(() => resolve(value()));
    });
  const executor = {
    containerStatus: (r: criV1.ContainerStatusRequest) => answer('containerStatus', () => ({ status: { id: r.containerId, state }, info: {} }) as unknown as criV1.ContainerStatusResponse),
    podSandboxStatus: (r: criV1.PodSandboxStatusRequest) => answer('podSandboxStatus', () => ({ status: { id: r.podSandboxId }, info: {}, containersStatuses: [] }) as unknown as criV1.PodSandboxStatusResponse),
    listContainers: () => answer('listContainers', () => ({ containers: [] })),
    listPodSandbox: () => answer('listPodSandbox', () => ({ items: [] })),
    startContainer: () => (fake.fail ? (calls.push('startContainer'), Promise.reject(new Error('failed'))) : answer('startContainer', () => ({}))),
    createContainer: () => answer('createContainer', () => ({ containerId: 'c9' })),
  };
  const backends = { executor, watchContainerEvents: (f: (e: ContainerEvent) => void) => ((listen = f), () => undefined) } as unknown as Backends;
  return {
    backends,
    calls,
    get fail() {
      return fake.fail;
    },
    set fail(v: boolean) {
      fake.fail = v;
    },
    setState: (s: string) => (state = s),
    /** Lets every pending executor call answer. */
    release: async () => {
      for (const w of waiting.splice(0)) w();
      await new Promise((r) => setImmediate(r));
    },
    event: (e: Partial<ContainerEvent> & { containerId: string }) => listen({ podSandboxId: 'pod', type: 'stopped', at: '0', ...e }),
  };
}

const mono = () => process.hrtime.bigint().toString();
const ask = (view: RuntimeView, id = 'c1') => view.containerStatus({ containerId: id, verbose: false });

test('a status is fetched once and kept; questions during the fetch join it', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const both = Promise.all([ask(view), ask(view)]);
  await f.release();
  await both;
  await ask(view);
  assert.deepEqual(f.calls, ['containerStatus']);
  // Verbose answers are always asked for.
  const verbose = view.containerStatus({ containerId: 'c1', verbose: true });
  await f.release();
  await verbose;
  assert.deepEqual(f.calls, ['containerStatus', 'containerStatus']);
});

test('an event drops what it concerns, only if fetched before the change; a late event of an older change drops nothing', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const before = mono(); // a change that happened before the fetches below, its event arriving late
  const fetched = Promise.all([ask(view, 'c1'), ask(view, 'c2'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  await f.release();
  await fetched;
  f.event({ containerId: 'c1', mono: before });
  await ask(view, 'c1');
  assert.equal(f.calls.length, 3, 'kept: fetched after the change');
  f.setState('exited');
  f.event({ containerId: 'c1', mono: mono() });
  const again = ask(view, 'c1');
  await f.release();
  assert.equal(((await again).status as unknown as { state: string }).state, 'exited');
  await Promise.all([ask(view, 'c2'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  assert.equal(f.calls.length, 4, "c2's status and the pod's are kept");
  // A pod event concerns the pod, not its containers.
  f.event({ containerId: 'pod', podSandboxId: 'pod', mono: mono() });
  const pod = view.podSandboxStatus({ podSandboxId: 'pod', verbose: false });
  await f.release();
  await Promise.all([pod, ask(view, 'c2')]);
  assert.deepEqual(f.calls.slice(4), ['podSandboxStatus']);
});

test('a fetch overlapped by a change is not kept; after a call of its own the view starts over and prefetches', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const first = ask(view);
  f.event({ containerId: 'c1', mono: mono() }); // while the executor answers
  await f.release();
  await first;
  const second = ask(view);
  await f.release();
  await second;
  assert.equal(f.calls.length, 2, 'the overlapped answer was not kept');
  view.changed();
  view.prefetch('container', 'c1');
  assert.equal(f.calls.length, 3);
  const asked = ask(view); // joins the prefetch
  await f.release();
  await asked;
  await ask(view);
  assert.equal(f.calls.length, 3);
  // An event without a monotonic time counts as a change when it arrives.
  f.event({ containerId: 'c1' });
  const after = ask(view);
  await f.release();
  await after;
  assert.equal(f.calls.length, 4);
});

const containerStatus = (id: string, state: criV1.ContainerState) => criV1.ContainerStatus.toJSON(criV1.ContainerStatus.fromPartial({ id, state, metadata: { name: id, attempt: 0 } }));

test("an event's status is the answer until the next change, with no fetch; an older event does not replace it", async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const E = criV1.ContainerState;
  const early = mono();
  f.event({ containerId: 'c1', type: 'started', mono: mono(), containerStatus: containerStatus('c1', E.CONTAINER_RUNNING) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_RUNNING);
  f.event({ containerId: 'c1', type: 'stopped', mono: mono(), containerStatus: containerStatus('c1', E.CONTAINER_EXITED) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_EXITED);
  f.event({ containerId: 'c1', type: 'started', mono: early, containerStatus: containerStatus('c1', E.CONTAINER_RUNNING) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_EXITED, 'a late event of an earlier change');
  const pod = criV1.PodSandboxStatus.toJSON(criV1.PodSandboxStatus.fromPartial({ id: 'pod', state: criV1.PodSandboxState.SANDBOX_NOTREADY }));
  f.event({ containerId: 'pod', podSandboxId: 'pod', type: 'stopped', mono: mono(), podSandboxStatus: pod });
  assert.equal((await view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })).status?.state, criV1.PodSandboxState.SANDBOX_NOTREADY);
  assert.deepEqual(f.calls, []);
  // Deleted: asked of the executor again.
  f.event({ containerId: 'c1', type: 'deleted', mono: mono() });
  const gone = ask(view);
  await f.release();
  await gone;
  assert.deepEqual(f.calls, ['containerStatus']);
});

test("after its own call the view keeps what it knows if the call's event is in by the reply, and starts over if not", async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const calls = forwardToExecutor(f.backends, view);
  const E = criV1.ContainerState;
  // The pod's status, kept from before.
  const pod = view.podSandboxStatus({ podSandboxId: 'pod', verbose: false });
  await f.release();
  await pod;
  // StartContainer whose event comes before the reply, as the executor sends them.
  const started = calls.startContainer({ containerId: 'c1' });
  f.event({ containerId: 'c1', type: 'started', mono: mono(), containerStatus: containerStatus('c1', E.CONTAINER_RUNNING) });
  await f.release();
  await started;
  assert.equal((await ask(view)).status?.state, E.CONTAINER_RUNNING);
  await view.podSandboxStatus({ podSandboxId: 'pod', verbose: false });
  assert.deepEqual(f.calls, ['podSandboxStatus', 'startContainer'], 'no drop, no prefetch');
  // A start with no event by the reply (a retry that changed nothing, say): that container and the list are dropped, its status fetched.
  const list = view.listContainers({ filter: undefined });
  await f.release();
  await list;
  const again = calls.startContainer({ containerId: 'c1' });
  await f.release();
  await again;
  assert.deepEqual(f.calls.slice(2), ['listContainers', 'startContainer', 'containerStatus']);
  const after = Promise.all([ask(view), view.listContainers({ filter: undefined }), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  await f.release();
  await after;
  assert.deepEqual(f.calls.slice(5), ['listContainers'], "the status joins the prefetch; the pod's is still kept");
  // CreateContainer: its event names the new container, known only from the reply.
  const created = calls.createContainer({ podSandboxId: 'pod', config: undefined, sandboxConfig: undefined });
  f.event({ containerId: 'c9', type: 'created', mono: mono(), containerStatus: containerStatus('c9', E.CONTAINER_CREATED) });
  await f.release();
  await created;
  assert.equal((await ask(view, 'c9')).status?.state, E.CONTAINER_CREATED);
  assert.deepEqual(f.calls.slice(6), ['createContainer']);
  // A failed call drops everything.
  f.fail = true;
  await assert.rejects(calls.startContainer({ containerId: 'c1' }));
  f.fail = false;
  const all = Promise.all([ask(view, 'c9'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  await f.release();
  await all;
  assert.deepEqual(f.calls.slice(7), ['startContainer', 'containerStatus', 'podSandboxStatus']);
});

test('a current list takes in each change from its event: added, replaced, removed; a list missing a change is fetched again', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const E = criV1.ContainerState;
  const lists = Promise.all([view.listContainers({ filter: undefined }), view.listPodSandbox({ filter: undefined })]);
  await f.release();
  await lists;
  const listed = async () => (await view.listContainers({ filter: undefined })).containers.map((c) => `${c.id}:${c.podSandboxId}:${c.state}`);
  f.event({ containerId: 'c5', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('c5', E.CONTAINER_CREATED) });
  f.event({ containerId: 'c6', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('c6', E.CONTAINER_CREATED) });
  assert.deepEqual(await listed(), [`c5:p1:${E.CONTAINER_CREATED}`, `c6:p1:${E.CONTAINER_CREATED}`]);
  f.event({ containerId: 'c5', podSandboxId: 'p1', type: 'stopped', mono: mono(), containerStatus: containerStatus('c5', E.CONTAINER_EXITED) });
  f.event({ containerId: 'c6', podSandboxId: 'p1', type: 'deleted', mono: mono() });
  assert.deepEqual(await listed(), [`c5:p1:${E.CONTAINER_EXITED}`]);
  // Filters apply to the patched list as to a fetched one.
  assert.deepEqual((await view.listContainers({ filter: { id: '', podSandboxId: 'p2', labelSelector: {}, state: undefined } })).containers, []);
  const pod = criV1.PodSandboxStatus.toJSON(criV1.PodSandboxStatus.fromPartial({ id: 'p1', state: criV1.PodSandboxState.SANDBOX_READY, metadata: { name: 'web', uid: 'u', namespace: 'n', attempt: 0 } }));
  f.event({ containerId: 'p1', podSandboxId: 'p1', type: 'started', mono: mono(), podSandboxStatus: pod });
  assert.deepEqual((await view.listPodSandbox({ filter: undefined })).items.map((p) => `${p.id}:${p.metadata?.name}:${p.state}`), [`p1:web:${criV1.PodSandboxState.SANDBOX_READY}`]);
  assert.deepEqual(f.calls, ['listContainers', 'listPodSandbox']);
  // An event without a status cannot be taken in: the list is fetched again, and kept current from there.
  f.event({ containerId: 'c7', podSandboxId: 'p1', type: 'created', mono: mono() });
  const refetched = listed();
  await f.release();
  assert.deepEqual(await refetched, []);
  assert.deepEqual(f.calls.slice(2), ['listContainers']);
  f.event({ containerId: 'c8', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('c8', E.CONTAINER_CREATED) });
  assert.deepEqual(await listed(), [`c8:p1:${E.CONTAINER_CREATED}`]);
  assert.equal(f.calls.length, 3);
});
