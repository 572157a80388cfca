import { ResourceExhaustedError } from '@berth/errors';
import { criV1 } from '@berth/proto';
import type { CallContext } from '@berth/rpc';
import type { ContainerEvent } from '@berth/bus';
import type { Backends } from '../backends.js';

const eventType: Record<ContainerEvent['type'], criV1.ContainerEventType> = {
  created: criV1.ContainerEventType.CONTAINER_CREATED_EVENT,
  started: criV1.ContainerEventType.CONTAINER_STARTED_EVENT,
  stopped: criV1.ContainerEventType.CONTAINER_STOPPED_EVENT,
  deleted: criV1.ContainerEventType.CONTAINER_DELETED_EVENT,
};

/** Events queued for one slow client before it is cut off (it can reconnect and list). */
const maxQueued = 10_000;

/**
 * GetContainerEvents: every lifecycle event of containers and sandboxes, as
 * the executor publishes them, with the pod's status and the container's
 * status as they were when it happened (none once deleted). Runs until the
 * client goes away.
 */
export function createGetContainerEventsHandler(backends: Backends) {
  return async (_request: criV1.GetEventsRequest, send: (m: criV1.ContainerEventResponse) => Promise<void>, ctx: CallContext): Promise<void> => {
    const queue: ContainerEvent[] = [];
    let wake: (() => void) | undefined;
    let overflow = false;
    const stop = backends.watchContainerEvents((e) => {
      if (queue.length >= maxQueued) overflow = true;
      else queue.push(e);
      wake?.();
    });
    const aborted = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    try {
      while (!ctx.signal.aborted) {
        const event = queue.shift();
        if (event === undefined) {
          if (overflow) throw new ResourceExhaustedError('the client fell too far behind the event stream');
          await Promise.race([new Promise<void>((r) => (wake = r)), aborted]);
          continue;
        }
        const pod = event.podSandboxStatus === undefined ? undefined : criV1.PodSandboxStatus.fromJSON(event.podSandboxStatus);
        const container = event.containerStatus === undefined ? undefined : criV1.ContainerStatus.fromJSON(event.containerStatus);
        await send({
          containerId: event.containerId,
          containerEventType: eventType[event.type],
          createdAt: BigInt(event.at),
          podSandboxStatus: pod,
          containersStatuses: container === undefined ? [] : [container],
        });
      }
    } finally {
      stop();
    }
  };
}
