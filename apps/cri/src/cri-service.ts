import type { BerthConfig } from '@berth/config';
import { criV1 } from '@berth/proto';
import { buildService, type Handlers } from '@berth/rpc';
import type { Logger } from '@berth/observability';
import type { ContainerEvent } from '@berth/bus';
import type { Backends } from './backends.js';
import type { RuntimeView } from './runtime-view.js';
import { createGetContainerEventsHandler } from './handlers/events.js';
import { createImageFsInfoHandler, createImageStatusHandler, createListImagesHandler, createPullImageHandler, createRemoveImageHandler, FsUsageView } from './handlers/images.js';
import { createRuntimeConfigHandler } from './handlers/runtime-config.js';
import { createStatusHandler } from './handlers/status.js';
import { createVersionHandler } from './handlers/version.js';

export interface CriServiceDeps {
  backends: Backends;
  view: RuntimeView;
  config: BerthConfig;
  logger: Logger;
  version: string;
}

/**
 * Pods and containers are the executor's: these RPCs go to it as they are
 * (its internal API takes the CRI's messages), but for the lists and
 * statuses the kubelet polls, which the view answers from memory. The
 * executor client allows an hour per call; the kubelet's deadline is the one
 * that matters.
 */
export function forwardToExecutor(backends: Backends, view: RuntimeView) {
  const e = backends.executor;
  /**
   * A call that may change pods or containers. `target` names the pod or
   * container it changes (`wide`: and the pod's containers too); `last`
   * names the event of its last change. If that event is in by the reply,
   * the view knows everything the call changed. Otherwise (the call changed
   * nothing, or its event is still on its way) the view drops what the call
   * may have changed (everything, after a failure or a wide call), and
   * fetches the target's status at once unless it was deleted.
   */
  const changing =
    <Req, Res>(
      call: (r: Req) => Promise<Res>,
      how: { target?: (r: Req, res: Res) => ['pod' | 'container', string]; last?: (r: Req, res: Res) => [ContainerEvent['type'], string]; wide?: boolean },
    ) =>
    async (r: Req): Promise<Res> => {
      const since = view.now();
      let res: Res | undefined;
      try {
        res = await call(r);
        return res;
      } finally {
        const event = res !== undefined && how.last !== undefined ? how.last(r, res) : undefined;
        if (event === undefined || !view.heardSince(event[0], event[1], since)) {
          const target = res !== undefined && how.target !== undefined ? how.target(r, res) : undefined;
          if (target === undefined || how.wide === true) view.changed();
          else view.changedOne(...target);
          if (target !== undefined && event?.[0] !== 'deleted') view.prefetch(...target);
        }
      }
    };
  const pod = (id: string): ['pod', string] => ['pod', id];
  const container = (id: string): ['container', string] => ['container', id];
  /**
   * The call on the pod or container its request names by full id: a prefix
   * is resolved first (`view.resolve`), so the events and kept answers the
   * call concerns are found by their ids. The executor resolves the calls
   * that are forwarded as they are.
   */
  const onPod =
    <Req extends { podSandboxId: string }, Res>(call: (r: Req) => Promise<Res>) =>
    (r: Req): Promise<Res> =>
      view.withId('pod', r.podSandboxId, (podSandboxId) => call({ ...r, podSandboxId }));
  const onContainer =
    <Req extends { containerId: string }, Res>(call: (r: Req) => Promise<Res>) =>
    (r: Req): Promise<Res> =>
      view.withId('container', r.containerId, (containerId) => call({ ...r, containerId }));
  return {
    runPodSandbox: changing((r: criV1.RunPodSandboxRequest) => e.runPodSandbox(r), { target: (_, res) => pod(res.podSandboxId), last: (_, res) => ['started', res.podSandboxId] }),
    // Stopping or removing a pod stops or removes its containers first, each with its event.
    stopPodSandbox: onPod(changing((r: criV1.StopPodSandboxRequest) => e.stopPodSandbox(r), { target: (r) => pod(r.podSandboxId), last: (r) => ['stopped', r.podSandboxId], wide: true })),
    removePodSandbox: onPod(changing((r: criV1.RemovePodSandboxRequest) => e.removePodSandbox(r), { target: (r) => pod(r.podSandboxId), last: (r) => ['deleted', r.podSandboxId], wide: true })),
    podSandboxStatus: (r: criV1.PodSandboxStatusRequest) => view.podSandboxStatus(r),
    listPodSandbox: (r: criV1.ListPodSandboxRequest) => view.listPodSandbox(r),
    createContainer: changing((r: criV1.CreateContainerRequest) => e.createContainer(r), { target: (_, res) => container(res.containerId), last: (_, res) => ['created', res.containerId] }),
    startContainer: onContainer(changing((r: criV1.StartContainerRequest) => e.startContainer(r), { target: (r) => container(r.containerId), last: (r) => ['started', r.containerId] })),
    stopContainer: onContainer(changing((r: criV1.StopContainerRequest) => e.stopContainer(r), { target: (r) => container(r.containerId), last: (r) => ['stopped', r.containerId] })),
    removeContainer: onContainer(changing((r: criV1.RemoveContainerRequest) => e.removeContainer(r), { target: (r) => container(r.containerId), last: (r) => ['deleted', r.containerId] })),
    containerStatus: (r: criV1.ContainerStatusRequest) => view.containerStatus(r),
    listContainers: (r: criV1.ListContainersRequest) => view.listContainers(r),
    execSync: (r: criV1.ExecSyncRequest) => e.execSync(r),
    updateContainerResources: onContainer(changing((r: criV1.UpdateContainerResourcesRequest) => e.updateContainerResources(r), { target: (r) => container(r.containerId) })),
    reopenContainerLog: (r: criV1.ReopenContainerLogRequest) => e.reopenContainerLog(r),
    containerStats: (r: criV1.ContainerStatsRequest) => e.containerStats(r),
    listContainerStats: (r: criV1.ListContainerStatsRequest) => e.listContainerStats(r),
    podSandboxStats: (r: criV1.PodSandboxStatsRequest) => e.podSandboxStats(r),
    listPodSandboxStats: (r: criV1.ListPodSandboxStatsRequest) => e.listPodSandboxStats(r),
    updateRuntimeConfig: (r: criV1.UpdateRuntimeConfigRequest) => e.updateRuntimeConfig(r),
    exec: (r: criV1.ExecRequest) => e.exec(r),
    attach: (r: criV1.AttachRequest) => e.attach(r),
    portForward: (r: criV1.PortForwardRequest) => e.portForward(r),
  } satisfies Handlers<typeof criV1.RuntimeServiceService>;
}

const unimplemented = (method: string): string => `berth does not implement ${method} yet`;

/**
 * The CRI's two services with every handler Berth has. Methods without a
 * handler answer UNIMPLEMENTED (never a made-up success). One file per RPC
 * under handlers/; the shared wrapper (rpc's buildService) validates bytes,
 * maps errors, traces and counts every call.
 */
export function createCriServices(deps: CriServiceDeps) {
  const runtime: Handlers<typeof criV1.RuntimeServiceService> = {
    version: createVersionHandler(deps.version),
    status: createStatusHandler(deps.backends, deps.config),
    runtimeConfig: createRuntimeConfigHandler(deps.backends),
    ...forwardToExecutor(deps.backends, deps.view),
    getContainerEvents: createGetContainerEventsHandler(deps.backends),
  };
  const usage = new FsUsageView(deps.backends);
  const image: Handlers<typeof criV1.ImageServiceService> = {
    pullImage: createPullImageHandler(deps.backends, usage),
    listImages: createListImagesHandler(deps.backends),
    imageStatus: createImageStatusHandler(deps.backends),
    removeImage: createRemoveImageHandler(deps.backends, usage),
    imageFsInfo: createImageFsInfoHandler(usage),
  };
  const options = { logger: deps.logger, service: 'cri', unimplementedMessage: unimplemented };
  return [buildService(criV1.RuntimeServiceService, runtime, options), buildService(criV1.ImageServiceService, image, options)];
}
