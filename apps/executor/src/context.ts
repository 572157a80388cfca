import type { BerthConfig } from '@berth/config';
import type { Logger } from '@berth/observability';
import type { Store } from '@berth/store-api';
import type { ImageResolver } from './images.js';
import type { ContainerRecord, PodRecord, RecordStore } from './records.js';
import type { OciRuntime } from './runtime.js';

export interface ExecutorPaths {
  podsDir: string;
  containersDir: string;
  /** Pinned namespaces, per pod. */
  nsDir: string;
  /** Short-lived files (exec process specs). */
  scratchDir: string;
  /** The sandbox images' root filesystems, each shared by every pause container of that image. */
  pauseRootfsDir: string;
}

/** What the pod and container managers share. */
export interface ExecutorContext {
  config: BerthConfig;
  logger: Logger;
  paths: ExecutorPaths;
  cgroupDriver: 'cgroupfs' | 'systemd';
  /** This process's oom_score_adj: without CAP_SYS_RESOURCE a child cannot go lower. */
  minOomScoreAdj: number;
  /** Whether the kernel has AppArmor enabled. */
  hostHasAppArmor: boolean;
  /** The capabilities in this process's bounding set: what a privileged container, or one that adds `ALL`, gets. */
  allCapabilities: readonly string[];
  store: Store;
  images: ImageResolver;
  pods: RecordStore<PodRecord>;
  containerRecords: RecordStore<ContainerRecord>;
  /** Containers removed (gone from every answer) whose cleanup has not finished yet: finished in the background, and at start after a crash. */
  containerRemovals: RecordStore<ContainerRecord>;
  containers: { stopAllOf(podId: string): Promise<void>; removeAllOf(podId: string): Promise<void> };
  /** Publishes a lifecycle event (GetContainerEvents). */
  emit(containerId: string, podSandboxId: string, type: 'created' | 'started' | 'stopped' | 'deleted'): void;
  /** The runtime for a handler ('' is the default); undefined for an unknown handler. */
  runtimeFor(handler: string): OciRuntime | undefined;
}
