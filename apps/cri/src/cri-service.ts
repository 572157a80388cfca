import type { BerthConfig } from '@berth/config';
import { criV1 } from '@berth/proto';
import { buildService, type Handlers } from '@berth/rpc';
import type { Logger } from '@berth/observability';
import type { Backends } from './backends.js';
import { createGetContainerEventsHandler } from './handlers/events.js';
import { createImageFsInfoHandler, createImageStatusHandler, createListImagesHandler, createPullImageHandler, createRemoveImageHandler } from './handlers/images.js';
import { createRuntimeConfigHandler } from './handlers/runtime-config.js';
import { createStatusHandler } from './handlers/status.js';
import { createVersionHandler } from './handlers/version.js';

export interface CriServiceDeps {
  backends: Backends;
  config: BerthConfig;
  logger: Logger;
  version: string;
}

/**
 * Pods and containers are the executor's: these RPCs go to it as they are
 * (its internal API takes the CRI's messages). The executor client allows
 * an hour per call; the kubelet's deadline is the one that matters.
 */
function forwardToExecutor(backends: Backends) {
  const e = backends.executor;
  return {
    runPodSandbox: (r: criV1.RunPodSandboxRequest) => e.runPodSandbox(r),
    stopPodSandbox: (r: criV1.StopPodSandboxRequest) => e.stopPodSandbox(r),
    removePodSandbox: (r: criV1.RemovePodSandboxRequest) => e.removePodSandbox(r),
    podSandboxStatus: (r: criV1.PodSandboxStatusRequest) => e.podSandboxStatus(r),
    listPodSandbox: (r: criV1.ListPodSandboxRequest) => e.listPodSandbox(r),
    createContainer: (r: criV1.CreateContainerRequest) => e.createContainer(r),
    startContainer: (r: criV1.StartContainerRequest) => e.startContainer(r),
    stopContainer: (r: criV1.StopContainerRequest) => e.stopContainer(r),
    removeContainer: (r: criV1.RemoveContainerRequest) => e.removeContainer(r),
    containerStatus: (r: criV1.ContainerStatusRequest) => e.containerStatus(r),
    listContainers: (r: criV1.ListContainersRequest) => e.listContainers(r),
    execSync: (r: criV1.ExecSyncRequest) => e.execSync(r),
    updateContainerResources: (r: criV1.UpdateContainerResourcesRequest) => e.updateContainerResources(r),
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
    ...forwardToExecutor(deps.backends),
    getContainerEvents: createGetContainerEventsHandler(deps.backends),
  };
  const image: Handlers<typeof criV1.ImageServiceService> = {
    pullImage: createPullImageHandler(deps.backends),
    listImages: createListImagesHandler(deps.backends),
    imageStatus: createImageStatusHandler(deps.backends),
    removeImage: createRemoveImageHandler(deps.backends),
    imageFsInfo: createImageFsInfoHandler(deps.backends),
  };
  const options = { logger: deps.logger, service: 'cri', unimplementedMessage: unimplemented };
  return [buildService(criV1.RuntimeServiceService, runtime, options), buildService(criV1.ImageServiceService, image, options)];
}
