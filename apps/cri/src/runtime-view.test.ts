import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { ContainerEvent } from '@berth/bus';
import { isCategory } from '@berth/errors';
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
    createContainer: () => answer('createContainer', () => ({ containerId: 'ctr9' })),
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
const ask = (view: RuntimeView, id = 'ctr1') => view.containerStatus({ containerId: id, verbose: false });

test('a status is fetched once and kept; questions during the fetch join it', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const both = Promise.all([ask(view), ask(view)]);
  await f.release();
  await both;
  await ask(view);
  assert.deepEqual(f.calls, ['containerStatus']);
  // Verbose answers are always asked for.
  const verbose = view.containerStatus({ containerId: 'ctr1', verbose: true });
  await f.release();
  await verbose;
  assert.deepEqual(f.calls, ['containerStatus', 'containerStatus']);
});

test('an event drops what it concerns, only if fetched before the change; a late event of an older change drops nothing', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const before = mono(); // a change that happened before the fetches below, its event arriving late
  const fetched = Promise.all([ask(view, 'ctr1'), ask(view, 'ctr2'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  await f.release();
  await fetched;
  f.event({ containerId: 'ctr1', mono: before });
  await ask(view, 'ctr1');
  assert.equal(f.calls.length, 3, 'kept: fetched after the change');
  f.setState('exited');
  f.event({ containerId: 'ctr1', mono: mono() });
  const again = ask(view, 'ctr1');
  await f.release();
  assert.equal(((await again).status as unknown as { state: string }).state, 'exited');
  await Promise.all([ask(view, 'ctr2'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  assert.equal(f.calls.length, 4, "ctr2's status and the pod's are kept");
  // A pod event concerns the pod, not its containers.
  f.event({ containerId: 'pod', podSandboxId: 'pod', mono: mono() });
  const pod = view.podSandboxStatus({ podSandboxId: 'pod', verbose: false });
  await f.release();
  await Promise.all([pod, ask(view, 'ctr2')]);
  assert.deepEqual(f.calls.slice(4), ['podSandboxStatus']);
});

test('a fetch overlapped by a change is not kept; after a call of its own the view starts over and prefetches', async () => {
  const f = fakeBackends();
  const view = new RuntimeView(f.backends);
  const first = ask(view);
  f.event({ containerId: 'ctr1', mono: mono() }); // while the executor answers
  await f.release();
  await first;
  const second = ask(view);
  await f.release();
  await second;
  assert.equal(f.calls.length, 2, 'the overlapped answer was not kept');
  view.changed();
  view.prefetch('container', 'ctr1');
  assert.equal(f.calls.length, 3);
  const asked = ask(view); // joins the prefetch
  await f.release();
  await asked;
  await ask(view);
  assert.equal(f.calls.length, 3);
  // An event without a monotonic time counts as a change when it arrives.
  f.event({ containerId: 'ctr1' });
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
  f.event({ containerId: 'ctr1', type: 'started', mono: mono(), containerStatus: containerStatus('ctr1', E.CONTAINER_RUNNING) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_RUNNING);
  f.event({ containerId: 'ctr1', type: 'stopped', mono: mono(), containerStatus: containerStatus('ctr1', E.CONTAINER_EXITED) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_EXITED);
  f.event({ containerId: 'ctr1', type: 'started', mono: early, containerStatus: containerStatus('ctr1', E.CONTAINER_RUNNING) });
  assert.equal((await ask(view)).status?.state, E.CONTAINER_EXITED, 'a late event of an earlier change');
  const pod = criV1.PodSandboxStatus.toJSON(criV1.PodSandboxStatus.fromPartial({ id: 'pod', state: criV1.PodSandboxState.SANDBOX_NOTREADY }));
  f.event({ containerId: 'pod', podSandboxId: 'pod', type: 'stopped', mono: mono(), podSandboxStatus: pod });
  assert.equal((await view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })).status?.state, criV1.PodSandboxState.SANDBOX_NOTREADY);
  assert.deepEqual(f.calls, []);
  // Deleted: asked of the executor again.
  f.event({ containerId: 'ctr1', type: 'deleted', mono: mono() });
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
  const started = calls.startContainer({ containerId: 'ctr1' });
  f.event({ containerId: 'ctr1', type: 'started', mono: mono(), containerStatus: containerStatus('ctr1', E.CONTAINER_RUNNING) });
  await f.release();
  await started;
  assert.equal((await ask(view)).status?.state, E.CONTAINER_RUNNING);
  await view.podSandboxStatus({ podSandboxId: 'pod', verbose: false });
  assert.deepEqual(f.calls, ['podSandboxStatus', 'startContainer'], 'no drop, no prefetch');
  // A start with no event by the reply (a retry that changed nothing, say): that container and the list are dropped, its status fetched.
  const list = view.listContainers({ filter: undefined });
  await f.release();
  await list;
  const again = calls.startContainer({ containerId: 'ctr1' });
  await f.release();
  await again;
  assert.deepEqual(f.calls.slice(2), ['listContainers', 'startContainer', 'containerStatus']);
  const after = Promise.all([ask(view), view.listContainers({ filter: undefined }), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
  await f.release();
  await after;
  assert.deepEqual(f.calls.slice(5), ['listContainers'], "the status joins the prefetch; the pod's is still kept");
  // CreateContainer: its event names the new container, known only from the reply.
  const created = calls.createContainer({ podSandboxId: 'pod', config: undefined, sandboxConfig: undefined });
  f.event({ containerId: 'ctr9', type: 'created', mono: mono(), containerStatus: containerStatus('ctr9', E.CONTAINER_CREATED) });
  await f.release();
  await created;
  assert.equal((await ask(view, 'ctr9')).status?.state, E.CONTAINER_CREATED);
  assert.deepEqual(f.calls.slice(6), ['createContainer']);
  // A failed call drops everything.
  f.fail = true;
  await assert.rejects(calls.startContainer({ containerId: 'ctr1' }));
  f.fail = false;
  const all = Promise.all([ask(view, 'ctr9'), view.podSandboxStatus({ podSandboxId: 'pod', verbose: false })]);
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
  f.event({ containerId: 'ctr5', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('ctr5', E.CONTAINER_CREATED) });
  f.event({ containerId: 'ctr6', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('ctr6', E.CONTAINER_CREATED) });
  assert.deepEqual(await listed(), [`ctr5:p1:${E.CONTAINER_CREATED}`, `ctr6:p1:${E.CONTAINER_CREATED}`]);
  f.event({ containerId: 'ctr5', podSandboxId: 'p1', type: 'stopped', mono: mono(), containerStatus: containerStatus('ctr5', E.CONTAINER_EXITED) });
  f.event({ containerId: 'ctr6', podSandboxId: 'p1', type: 'deleted', mono: mono() });
  assert.deepEqual(await listed(), [`ctr5:p1:${E.CONTAINER_EXITED}`]);
  // Filters apply to the patched list as to a fetched one.
  assert.deepEqual((await view.listContainers({ filter: { id: '', podSandboxId: 'p2', labelSelector: {}, state: undefined } })).containers, []);
  const pod = criV1.PodSandboxStatus.toJSON(criV1.PodSandboxStatus.fromPartial({ id: 'p1', state: criV1.PodSandboxState.SANDBOX_READY, metadata: { name: 'web', uid: 'u', namespace: 'n', attempt: 0 } }));
  f.event({ containerId: 'p1', podSandboxId: 'p1', type: 'started', mono: mono(), podSandboxStatus: pod });
  assert.deepEqual((await view.listPodSandbox({ filter: undefined })).items.map((p) => `${p.id}:${p.metadata?.name}:${p.state}`), [`p1:web:${criV1.PodSandboxState.SANDBOX_READY}`]);
  assert.deepEqual(f.calls, ['listContainers', 'listPodSandbox']);
  // An event without a status cannot be taken in: the list is fetched again, and kept current from there.
  f.event({ containerId: 'ctr7', podSandboxId: 'p1', type: 'created', mono: mono() });
  const refetched = listed();
  await f.release();
  assert.deepEqual(await refetched, []);
  assert.deepEqual(f.calls.slice(2), ['listContainers']);
  f.event({ containerId: 'ctr8', podSandboxId: 'p1', type: 'created', mono: mono(), containerStatus: containerStatus('ctr8', E.CONTAINER_CREATED) });
  assert.deepEqual(await listed(), [`ctr8:p1:${E.CONTAINER_CREATED}`]);
  assert.equal(f.calls.length, 3);
});

test('a prefix is resolved to its full id, against the kept list and then a fresh one, before the view keys anything by it (containerd resolves unique id prefixes in every call)', async () => {
  const id = (start: string) => start + '0'.repeat(64 - start.length);
  const pods = [id('ab1'), id('ab2'), id('cd')];
  const containers = [id('ef')];
  const asked: string[] = [];
  let lists = 0;
  const executor = {
    listPodSandbox: async () => (lists++, { items: pods.map((p) => ({ id: p })) }),
    listContainers: async () => (lists++, { containers: containers.map((c) => ({ id: c })) }),
    podSandboxStatus: async (r: criV1.PodSandboxStatusRequest) => (asked.push(`status ${r.podSandboxId}`), { status: { id: r.podSandboxId }, info: {}, containersStatuses: [] }),
    containerStatus: async (r: criV1.ContainerStatusRequest) => (asked.push(`status ${r.containerId}`), { status: { id: r.containerId }, info: {} }),
    stopPodSandbox: async (r: criV1.StopPodSandboxRequest) => (asked.push(`stop ${r.podSandboxId}`), {}),
    stopContainer: async (r: criV1.StopContainerRequest) => (asked.push(`stop ${r.containerId}`), {}),
  };
  const backends = { executor, watchContainerEvents: () => () => undefined } as unknown as Backends;
  const view = new RuntimeView(backends);
  const calls = forwardToExecutor(backends, view);
  assert.equal((await view.podSandboxStatus({ podSandboxId: 'cd', verbose: false })).status?.id, id('cd'));
  await view.podSandboxStatus({ podSandboxId: id('cd'), verbose: false });
  assert.deepEqual(asked, [`status ${id('cd')}`], 'kept under the full id');
  assert.equal(lists, 1);
  // A full id is taken as it is (the kubelet's every call): no list is asked for, and an unknown one reaches the executor (Stop and Remove succeed for it there).
  await calls.stopPodSandbox({ podSandboxId: id('99') });
  await calls.stopPodSandbox({ podSandboxId: '3b241101-e2bb-4255-8caf-4136c2a0f8b3' });
  // (A stop drops what the view keeps and prefetches the status: only the stops are looked at.)
  const stops = () => asked.filter((a) => a.startsWith('stop '));
  assert.deepEqual(stops(), [`stop ${id('99')}`, 'stop 3b241101-e2bb-4255-8caf-4136c2a0f8b3']);
  assert.equal(lists, 1);
  // A prefix goes on as the full id it names.
  await calls.stopPodSandbox({ podSandboxId: 'cd' });
  await calls.stopContainer({ containerId: 'ef', timeout: 0n });
  assert.deepEqual(stops().slice(2), [`stop ${id('cd')}`, `stop ${id('ef')}`]);
  // A pod the kept list does not show yet (its event on the way): found in a fresh list.
  pods.push(id('42'));
  assert.equal((await view.podSandboxStatus({ podSandboxId: '42', verbose: false })).status?.id, id('42'));
  // Ambiguous, or naming nothing: refused, never a success for work not done.
  await assert.rejects(calls.stopPodSandbox({ podSandboxId: 'ab' }), (e: Error) => isCategory(e, 'failed-precondition'));
  await assert.rejects(calls.stopPodSandbox({ podSandboxId: '77' }), (e: Error) => isCategory(e, 'not-found'));
  await assert.rejects(view.containerStatus({ containerId: 'e0', verbose: false }), (e: Error) => isCategory(e, 'not-found'));
  assert.ok(!asked.some((a) => a.includes(' ab') || a.includes(' 77') || a.includes(' e0')), 'nothing reached the executor');
});
