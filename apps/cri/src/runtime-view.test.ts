import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { ContainerEvent } from '@berth/bus';
import type { criV1 } from '@berth/proto';
import type { Backends } from './backends.js';
import { RuntimeView } from './runtime-view.js';

/** An executor whose answers come when the test says, counting the calls; and the event feed. */
function fakeBackends() {
  const calls: string[] = [];
  const waiting: (() => void)[] = [];
  let state = 'running';
  let listen: (e: ContainerEvent) => void = () => undefined;
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
  };
  const backends = { executor, watchContainerEvents: (f: (e: ContainerEvent) => void) => ((listen = f), () => undefined) } as unknown as Backends;
  return {
    backends,
    calls,
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
