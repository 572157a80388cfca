// What the kubelet polls every second (ListPodSandbox, ListContainers, and
// the status of what changed) answered from memory: each answer is fetched
// from the executor once and kept until it may have changed. Changes are
// the executor's lifecycle events (exits, a pod's pause dying, calls made by
// anyone), which drop what they concern (a container's status and the
// container list, or a pod's status and the pod list).
//
// An answer is kept only if it reflects the last change it may concern.
// Events carry the executor's CLOCK_MONOTONIC time of the change (one clock
// for every process of the node): an answer fetched after a change survives
// the late arrival of that change's event. Events also carry the status of
// what changed, as it was then: that status is the answer until the next
// change, with no fetch. Entries expire after a few seconds, so a missed
// event costs at most that.
//
// After this frontend's own call, the executor has published the call's
// event before replying, and its events arrive in order. If the event of the
// call's last change is in, everything the call changed is known. If not (a
// call that changed nothing, or an event still on its way), what the call
// may have changed is dropped (the pod or container and its list; all that
// is kept, after a failure or a call on a whole pod), and the status of what
// the call changed is fetched at once, as the kubelet asks for it next. A
// question asked while its answer is being fetched joins that fetch.
//
// Everything is keyed by full ids: a prefix (crictl shows ids truncated) is
// resolved to the pod or container it names first (`resolve`).
import type { ContainerEvent } from '@berth/bus';
import { isCategory, NotFoundError } from '@berth/errors';
import { criV1, filterContainers, filterPods, isIdPrefix, resolveId } from '@berth/proto';
import { encodeOnce } from '@berth/rpc';
import type { Backends } from './backends.js';

/** The longest an answer is kept without hearing of a change (nanoseconds). */
const maxAge = 5_000_000_000n;
/** Change times kept per pod or container before they are folded into one for all. */
const maxChangeTimes = 10_000;

const now = (): bigint => process.hrtime.bigint();

/** A kept answer: it reflects every change up to `asOf` (CLOCK_MONOTONIC); it expires `maxAge` after `born`, its fetch or event. */
interface Kept {
  asOf: bigint;
  born: bigint;
  value: unknown;
}

/** A list kept up to date by one event: the item it concerns added, replaced or removed; undefined when the event lacks what that needs. */
function patchList<T extends { id: string }>(items: T[], id: string, item: T | undefined, deleted: boolean): T[] | undefined {
  if (deleted) return items.filter((i) => i.id !== id);
  if (item === undefined) return undefined;
  const at = items.findIndex((i) => i.id === id);
  return at === -1 ? [...items, item] : items.map((i, n) => (n === at ? item : i));
}

export class RuntimeView {
  private readonly kept = new Map<string, Kept>();
  private readonly fetching = new Map<string, { started: bigint; value: Promise<unknown> }>();
  /** The latest change heard of, per key; and for every key. */
  private readonly changedAt = new Map<string, bigint>();
  private allChangedAt = 0n;
  /** When each kind of event was last heard of, per pod or container ("started:<id>"). */
  private readonly eventAt = new Map<string, bigint>();
  private readonly stop: () => void;

  constructor(private readonly backends: Backends) {
    this.stop = backends.watchContainerEvents((e) => this.heard(e));
  }

  /** Drops everything kept: call after anything that may change a pod or container. */
  changed(): void {
    this.allChangedAt = now();
    this.kept.clear();
    this.changedAt.clear();
    this.eventAt.clear();
  }

  /** Marks one pod or container, and the list it is in, as changed now (a call on it whose event has not come in yet). */
  changedOne(kind: 'pod' | 'container', id: string): void {
    const at = now();
    for (const key of [`${kind}/${id}`, kind === 'pod' ? 'pods' : 'containers']) this.changedAt.set(key, at);
  }

  /**
   * Whether the `type` event of the pod or container `id` (pods' events
   * carry their own id) arrived for a change made after `since`.
   */
  heardSince(type: ContainerEvent['type'], id: string, since: bigint): boolean {
    return (this.eventAt.get(`${type}:${id}`) ?? 0n) >= since;
  }

  /** The monotonic clock the events' times are on. */
  now(): bigint {
    return now();
  }

  /** An event from the executor: what it concerns is stale if fetched before the change; the status it carries is the answer. */
  private heard(e: ContainerEvent): void {
    const at = e.mono !== undefined && /^\d+$/.test(e.mono) ? BigInt(e.mono) : now();
    const isPod = e.containerId === e.podSandboxId;
    const own = isPod ? `pod/${e.podSandboxId}` : `container/${e.containerId}`;
    const listKey = isPod ? 'pods' : 'containers';
    if (this.changedAt.size > maxChangeTimes || this.eventAt.size > maxChangeTimes) this.changed();
    // A list that was current until this change can take it in.
    const list = this.kept.get(listKey);
    const listWasCurrent = list !== undefined && list.asOf >= this.staleBefore(listKey) && at > list.asOf;
    for (const key of [own, listKey]) if (at > (this.changedAt.get(key) ?? 0n)) this.changedAt.set(key, at);
    const eventKey = `${e.type}:${e.containerId}`;
    if (at > (this.eventAt.get(eventKey) ?? 0n)) this.eventAt.set(eventKey, at);
    // Only the latest change known: a late event of an earlier one has nothing to add.
    if (at < this.staleBefore(own)) return;
    const deleted = e.type === 'deleted';
    if (isPod) {
      const status = deleted || e.podSandboxStatus === undefined ? undefined : criV1.PodSandboxStatus.fromJSON(e.podSandboxStatus);
      if (status !== undefined) this.kept.set(own, { asOf: at, born: at, value: { status, info: {}, containersStatuses: [], timestamp: BigInt(e.at) } satisfies criV1.PodSandboxStatusResponse });
      if (listWasCurrent && at >= this.staleBefore(listKey)) {
        const item = status === undefined ? undefined : { id: status.id, metadata: status.metadata, state: status.state, createdAt: status.createdAt, labels: status.labels, annotations: status.annotations, runtimeHandler: status.runtimeHandler };
        const items = patchList((list.value as criV1.ListPodSandboxResponse).items, e.containerId, item, deleted);
        if (items !== undefined) this.kept.set(listKey, { asOf: at, born: list.born, value: { items } satisfies criV1.ListPodSandboxResponse });
      }
      return;
    }
    const status = deleted || e.containerStatus === undefined ? undefined : criV1.ContainerStatus.fromJSON(e.containerStatus);
    if (status !== undefined) this.kept.set(own, { asOf: at, born: at, value: { status, info: {} } satisfies criV1.ContainerStatusResponse });
    if (listWasCurrent && at >= this.staleBefore(listKey)) {
      const item =
        status === undefined
          ? undefined
          : { id: status.id, podSandboxId: e.podSandboxId, metadata: status.metadata, image: status.image, imageRef: status.imageRef, state: status.state, createdAt: status.createdAt, labels: status.labels, annotations: status.annotations, imageId: status.imageId };
      const containers = patchList((list.value as criV1.ListContainersResponse).containers, e.containerId, item, deleted);
      if (containers !== undefined) this.kept.set(listKey, { asOf: at, born: list.born, value: { containers } satisfies criV1.ListContainersResponse });
    }
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
    if (hit !== undefined && hit.asOf >= this.staleBefore(key) && now() - hit.born < maxAge) return Promise.resolve(hit.value as T);
    const pending = this.fetching.get(key);
    if (pending !== undefined && pending.started > this.staleBefore(key)) return pending.value as Promise<T>;
    const started = now();
    const value = fetch().then((v) => {
      // A fetch reflects the changes made before it began; an event's status heard meanwhile may be newer.
      const asOf = started - 1n;
      if (asOf >= this.staleBefore(key) && asOf > (this.kept.get(key)?.asOf ?? -1n)) this.kept.set(key, { asOf, born: started, value: v });
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

  // Unfiltered, the kept answer itself goes out (kept answers are never changed, only replaced), encoded once.
  async listContainers(r: criV1.ListContainersRequest): Promise<criV1.ListContainersResponse> {
    const all = await this.keep('containers', () => this.backends.executor.listContainers({ filter: undefined }));
    const containers = filterContainers(all.containers, r.filter);
    return containers === all.containers ? encodeOnce(all) : { containers };
  }

  async listPodSandbox(r: criV1.ListPodSandboxRequest): Promise<criV1.ListPodSandboxResponse> {
    const all = await this.keep('pods', () => this.backends.executor.listPodSandbox({ filter: undefined }));
    const items = filterPods(all.items, r.filter);
    return items === all.items ? encodeOnce(all) : { items };
  }

  containerStatus(request: criV1.ContainerStatusRequest): Promise<criV1.ContainerStatusResponse> {
    return this.withId('container', request.containerId, (containerId) => {
      const r = { ...request, containerId };
      // Verbose answers carry live details (the pid, the process): always asked for.
      if (r.verbose) return this.backends.executor.containerStatus(r);
      return this.keep(`container/${r.containerId}`, () => this.backends.executor.containerStatus(r));
    });
  }

  podSandboxStatus(request: criV1.PodSandboxStatusRequest): Promise<criV1.PodSandboxStatusResponse> {
    return this.withId('pod', request.podSandboxId, (podSandboxId) => {
      const r = { ...request, podSandboxId };
      if (r.verbose) return this.backends.executor.podSandboxStatus(r);
      return this.keep(`pod/${r.podSandboxId}`, () => this.backends.executor.podSandboxStatus(r));
    });
  }

  /** `call` with the full id `id` names (`resolve`): at once, in the same tick, for an id that is no prefix. */
  withId<T>(kind: 'pod' | 'container', id: string, call: (id: string) => Promise<T>): Promise<T> {
    return isIdPrefix(id) ? this.resolve(kind, id).then(call) : call(id);
  }

  /**
   * The full id of the pod or container `id` names, so that what is kept and
   * dropped is keyed by full ids. An id without the form of a prefix (a full
   * one, as the kubelet sends) comes back as it is, with no lookup. A prefix
   * (as crictl shows ids) is resolved against the kept list, and against a
   * fresh one when that finds none or several (a change may be on its way):
   * NotFoundError when it names none, FailedPreconditionError when several.
   */
  async resolve(kind: 'pod' | 'container', id: string): Promise<string> {
    if (!isIdPrefix(id)) return id;
    const what = kind === 'pod' ? 'pod sandbox' : 'container';
    const ids = async (fresh: boolean): Promise<string[]> => {
      if (kind === 'pod') {
        const list = () => this.backends.executor.listPodSandbox({ filter: undefined });
        return (await (fresh ? list() : this.keep('pods', list))).items.map((p) => p.id);
      }
      const list = () => this.backends.executor.listContainers({ filter: undefined });
      return (await (fresh ? list() : this.keep('containers', list))).containers.map((c) => c.id);
    };
    let found: string | undefined;
    try {
      found = resolveId(await ids(false), id, what, (i) => i);
    } catch (err) {
      if (!isCategory(err, 'failed-precondition')) throw err;
    }
    found ??= resolveId(await ids(true), id, what, (i) => i);
    if (found === undefined) throw new NotFoundError(`${what} ${JSON.stringify(id)} not found`);
    return found;
  }
}
