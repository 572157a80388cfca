// The CRI's list filters, in one place: the executor applies them to what it
// lists, the CRI frontend to the lists it keeps in memory.
import type * as criV1 from './gen/runtime/v1/api.js';

const labelsMatch = (labels: Record<string, string>, selector: Record<string, string> | undefined) => selector === undefined || Object.entries(selector).every(([k, v]) => labels[k] === v);
const noLabels = (selector: Record<string, string> | undefined) => selector === undefined || Object.keys(selector).length === 0;

/**
 * ListContainers' filter: id and pod id (a prefix each), state, labels (all
 * must match). A filter that selects everything returns `items` itself.
 */
export function filterContainers(items: criV1.Container[], filter: criV1.ContainerFilter | undefined): criV1.Container[] {
  if (filter === undefined || (!filter.id && !filter.podSandboxId && filter.state === undefined && noLabels(filter.labelSelector))) return items;
  return items.filter(
    (c) =>
      (!filter.id || c.id.startsWith(filter.id)) &&
      (!filter.podSandboxId || c.podSandboxId.startsWith(filter.podSandboxId)) &&
      (filter.state === undefined || filter.state.state === c.state) &&
      labelsMatch(c.labels, filter.labelSelector),
  );
}

/** ListPodSandbox's filter: id (a prefix), state, labels. A filter that selects everything returns `items` itself. */
export function filterPods(items: criV1.PodSandbox[], filter: criV1.PodSandboxFilter | undefined): criV1.PodSandbox[] {
  if (filter === undefined || (!filter.id && filter.state === undefined && noLabels(filter.labelSelector))) return items;
  return items.filter((p) => (!filter.id || p.id.startsWith(filter.id)) && (filter.state === undefined || filter.state.state === p.state) && labelsMatch(p.labels, filter.labelSelector));
}
