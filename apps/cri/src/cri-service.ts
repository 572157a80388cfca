import type { BerthConfig } from '@berth/config';
import { criV1 } from '@berth/proto';
import { buildService, type Handlers } from '@berth/rpc';
import type { Logger } from '@berth/observability';
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
function forwardToExecutor(backends: Backends, view: RuntimeView) {
  const e = backends.executor;
  /**
   * A call that may change pods or containers: what the view keeps is dropped
   * once it is done (or failed halfway); on success the status of what it
   * changed (`changed` names it) is fetched at once.
   */
  const changing =
    <Req, Res>(call: (r: Req) => Promise<Res>, changed?: (r: Req, res: Res) => ['pod' | 'container', string]) =>
    async (r: Req): Promise<Res> => {
      let res: Res | undefined;
      try {
        res = await call(r);
        return res;
      } finally {
        view.changed();
        if (res !== undefined && changed !== undefined) view.prefetch(...changed(r, res));
      }
    };
  const pod = (id: string): ['pod', string] => ['pod', id];
  const container = (id: string): ['container', string] => ['container', id];
  return {
    runPodSandbox: changing((r: criV1.RunPodSandboxRequest) => e.runPodSandbox(r), (_, res) => pod(res.podSandboxId)),
    stopPodSandbox: changing((r: criV1.StopPodSandboxRequest) => e.stopPodSandbox(r), (r) => pod(r.podSandboxId)),
    removePodSandbox: changing((r: criV1.RemovePodSandboxRequest) => e.removePodSandbox(r)),
    podSandboxStatus: (r: criV1.PodSandboxStatusRequest) => view.podSandboxStatus(r),
    listPodSandbox: (r: criV1.ListPodSandboxRequest) => view.listPodSandbox(r),
    createContainer: changing((r: criV1.CreateContainerRequest) => e.createContainer(r), (_, res) => container(res.containerId)),
    startContainer: changing((r: criV1.StartContainerRequest) => e.startContainer(r), (r) => container(r.containerId)),
    stopContainer: changing((r: criV1.StopContainerRequest) => e.stopContainer(r), (r) => container(r.containerId)),
    removeContainer: changing((r: criV1.RemoveContainerRequest) => e.removeContainer(r)),
    containerStatus: (r: criV1.ContainerStatusRequest) => view.containerStatus(r),
    listContainers: (r: criV1.ListContainersRequest) => view.listContainers(r),
    execSync: (r: criV1.ExecSyncRequest) => e.execSync(r),
    updateContainerResources: changing((r: criV1.UpdateContainerResourcesRequest) => e.updateContainerResources(r), (r) => container(r.containerId)),
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
