// The CRI's list filters, in one place: the executor applies them to what it
// lists, the CRI frontend to the lists it keeps in memory.
import { matchId } from './cri-ids.js';
import type * as criV1 from './gen/runtime/v1/api.js';

const labelsMatch = (labels: Record<string, string>, selector: Record<string, string> | undefined) => selector === undefined || Object.entries(selector).every(([k, v]) => labels[k] === v);
const noLabels = (selector: Record<string, string> | undefined) => selector === undefined || Object.keys(selector).length === 0;

/**
 * The one id of `ids` a filter's id names (its full id or a unique prefix),
 * as containerd resolves a filter's id before comparing; a prefix that is
 * ambiguous or names nothing selects nothing.
 */
const filterId = (ids: Iterable<string>, query: string): string | undefined => {
  const matches = matchId(new Set(ids), query, (id) => id);
  return matches.length === 1 ? matches[0] : undefined;
};

/**
 * ListContainers' filter: id and pod id (each the full id or a unique prefix
 * of one: the pod's among the pods of the listed containers), state, labels
 * (all must match). A filter that selects everything returns `items` itself.
 */
export function filterContainers(items: criV1.Container[], filter: criV1.ContainerFilter | undefined): criV1.Container[] {
  if (filter === undefined || (!filter.id && !filter.podSandboxId && filter.state === undefined && noLabels(filter.labelSelector))) return items;
  const id = filter.id ? filterId(items.map((c) => c.id), filter.id) : undefined;
  const podId = filter.podSandboxId ? filterId(items.map((c) => c.podSandboxId), filter.podSandboxId) : undefined;
  return items.filter(
    (c) =>
      (!filter.id || c.id === id) &&
      (!filter.podSandboxId || c.podSandboxId === podId) &&
      (filter.state === undefined || filter.state.state === c.state) &&
      labelsMatch(c.labels, filter.labelSelector),
  );
}

/** ListPodSandbox's filter: id (the full id or a unique prefix), state, labels. A filter that selects everything returns `items` itself. */
export function filterPods(items: criV1.PodSandbox[], filter: criV1.PodSandboxFilter | undefined): criV1.PodSandbox[] {
  if (filter === undefined || (!filter.id && filter.state === undefined && noLabels(filter.labelSelector))) return items;
  const id = filter.id ? filterId(items.map((p) => p.id), filter.id) : undefined;
  return items.filter((p) => (!filter.id || p.id === id) && (filter.state === undefined || filter.state.state === p.state) && labelsMatch(p.labels, filter.labelSelector));
}
