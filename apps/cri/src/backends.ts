import { subjects, type Bus, type ContainerEvent, type ImageServiceInfo, type PullImageReply, type PullImageRequest } from '@berth/bus';
import { internalSocket, type BerthConfig } from '@berth/config';
import { executorV1, storeV1 } from '@berth/proto';
import { createClient, type PromiseClient } from '@berth/rpc';
import { RemoteStore } from '@berth/store-api';

/** The internal services the CRI frontend talks to. */
export interface Backends {
  store: PromiseClient<typeof storeV1.StoreService>;
  executor: PromiseClient<typeof executorV1.ExecutorService>;
  /** The store's Store interface (images, content, usage). */
  images: RemoteStore;
  imageInfo(timeoutMs: number): Promise<ImageServiceInfo>;
  pullImage(request: PullImageRequest, timeoutMs: number): Promise<PullImageReply>;
  /** Calls `onEvent` for each progress event (heartbeats included) of pulls of `image` until the returned function is called. */
  watchPull(image: string, onEvent: () => void): () => void;
  /** Calls `onEvent` for every container and sandbox lifecycle event until the returned function is called. */
  watchContainerEvents(onEvent: (event: ContainerEvent) => void): () => void;
  close(): void;
}

export function connectBackends(config: BerthConfig, bus: Bus): Backends {
  const store = createClient(storeV1.StoreService, `unix://${internalSocket(config, 'store')}`);
  // Pod and container calls may pull the sandbox image or wait out a stop timeout: the kubelet's own deadline governs them.
  const executor = createClient(executorV1.ExecutorService, `unix://${internalSocket(config, 'executor')}`, { timeoutMs: 60 * 60 * 1000 });
  const images = new RemoteStore(`unix://${internalSocket(config, 'store')}`, { timeoutMs: 60_000 });
  return {
    store,
    executor,
    images,
    imageInfo: (timeoutMs) => bus.request(subjects.imageInfo, {}, { timeoutMs }),
    pullImage: (request, timeoutMs) => bus.request(subjects.imagePull, request, { timeoutMs }),
    watchPull: (image, onEvent) => {
      const sub = bus.subscribe(subjects.pullProgress, (e) => {
        if (e.payload.image === image) onEvent();
      });
      return () => sub.unsubscribe();
    },
    watchContainerEvents: (onEvent) => {
      const sub = bus.subscribe(subjects.containerEvent, (e) => onEvent(e.payload));
      return () => sub.unsubscribe();
    },
    close() {
      store.close();
      executor.close();
      void images.close();
    },
  };
}
