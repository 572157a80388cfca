// What the kubelet polls every second (ListPodSandbox, ListContainers, and
// the status of what changed) answered from memory: each answer is fetched
// from the executor once and kept until it may have changed. Changes are
// the executor's lifecycle events (exits, a pod's pause dying, calls made by
// anyone), which drop what they concern (a container's status and the
// container list, or a pod's status and the pod list), and this frontend's
// own mutating calls, which drop everything.
//
// An answer is kept only if its fetch began after the last change it may
// reflect. Events carry the executor's CLOCK_MONOTONIC time of the change
// (one clock for every process of the node), so an answer fetched after a
// change survives the late arrival of that change's event. Entries also
// expire after a few seconds, so a missed event costs at most that. The
// status of what a call just changed is fetched at once (the kubelet asks
// for it next), and a question asked while its answer is being fetched
// joins that fetch.
import type { ContainerEvent } from '@berth/bus';
import { filterContainers, filterPods, type criV1 } from '@berth/proto';
import type { Backends } from './backends.js';

/** The longest an answer is kept without hearing of a change (nanoseconds). */
const maxAge = 5_000_000_000n;
/** Change times kept per pod or container before they are folded into one for all. */
const maxChangeTimes = 10_000;

const now = (): bigint => process.hrtime.bigint();

export class RuntimeView {
  private readonly kept = new Map<string, { started: bigint; value: unknown }>();
  private readonly fetching = new Map<string, { started: bigint; value: Promise<unknown> }>();
  /** The latest change heard of, per key; and for every key. */
  private readonly changedAt = new Map<string, bigint>();
  private allChangedAt = 0n;
  private readonly stop: () => void;

  constructor(private readonly backends: Backends) {
    this.stop = backends.watchContainerEvents((e) => this.heard(e));
  }

  /** Drops everything kept: call after anything that may change a pod or container. */
  changed(): void {
    this.allChangedAt = now();
    this.kept.clear();
    this.changedAt.clear();
  }

  /** An event from the executor: what it concerns is stale if fetched before the change. */
  private heard(e: ContainerEvent): void {
    const at = e.mono !== undefined && /^\d+$/.test(e.mono) ? BigInt(e.mono) : now();
    const keys = e.containerId === e.podSandboxId ? [`pod/${e.podSandboxId}`, 'pods'] : [`container/${e.containerId}`, 'containers'];
    if (this.changedAt.size > maxChangeTimes) this.changed();
    for (const key of keys) if (at > (this.changedAt.get(key) ?? 0n)) this.changedAt.set(key, at);
  }

  private staleBefore(key: string): bigint {
    const one = this.changedAt.get(key) ?? 0n;
    return one > this.allChangedAt ? one : this.allChangedAt;
  }

  close(): void {
    this.stop();
  }

  private keep<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const hit = this.kept.get(key);
    if (hit !== undefined && hit.started > this.staleBefore(key) && now() - hit.started < maxAge) return Promise.resolve(hit.value as T);
    const pending = this.fetching.get(key);
    if (pending !== undefined && pending.started > this.staleBefore(key)) return pending.value as Promise<T>;
    const started = now();
    const value = fetch().then((v) => {
      if (started > this.staleBefore(key)) this.kept.set(key, { started, value: v });
      return v;
    });
    const entry = { started, value };
    this.fetching.set(key, entry);
    const done = () => {
      if (this.fetching.get(key) === entry) this.fetching.delete(key);
    };
    value.then(done, done);
    return value;
  }

  /** After a change to one pod or container: its status, fetched now, as the kubelet asks for it next. */
  prefetch(kind: 'pod' | 'container', id: string): void {
    const fetched = kind === 'pod' ? this.podSandboxStatus({ podSandboxId: id, verbose: false }) : this.containerStatus({ containerId: id, verbose: false });
    fetched.catch(() => undefined);
  }

  async listContainers(r: criV1.ListContainersRequest): Promise<criV1.ListContainersResponse> {
    const all = await this.keep('containers', () => this.backends.executor.listContainers({ filter: undefined }));
    return { containers: filterContainers(all.containers, r.filter) };
  }

  async listPodSandbox(r: criV1.ListPodSandboxRequest): Promise<criV1.ListPodSandboxResponse> {
    const all = await this.keep('pods', () => this.backends.executor.listPodSandbox({ filter: undefined }));
    return { items: filterPods(all.items, r.filter) };
  }

  containerStatus(r: criV1.ContainerStatusRequest): Promise<criV1.ContainerStatusResponse> {
    // Verbose answers carry live details (the pid, the process): always asked for.
    if (r.verbose) return this.backends.executor.containerStatus(r);
    return this.keep(`container/${r.containerId}`, () => this.backends.executor.containerStatus(r));
  }

  podSandboxStatus(r: criV1.PodSandboxStatusRequest): Promise<criV1.PodSandboxStatusResponse> {
    if (r.verbose) return this.backends.executor.podSandboxStatus(r);
    return this.keep(`pod/${r.podSandboxId}`, () => this.backends.executor.podSandboxStatus(r));
  }
}
