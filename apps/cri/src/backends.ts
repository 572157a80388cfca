import { subjects, type Bus, type ImageServiceInfo } from '@berth/bus';
import { internalSocket, type BerthConfig } from '@berth/config';
import { executorV1, storeV1 } from '@berth/proto';
import { createClient, type PromiseClient } from '@berth/rpc';

/** The internal services the CRI frontend talks to. */
export interface Backends {
  store: PromiseClient<typeof storeV1.StoreService>;
  executor: PromiseClient<typeof executorV1.ExecutorService>;
  imageInfo(timeoutMs: number): Promise<ImageServiceInfo>;
  close(): void;
}

/**
 * Channels retry quickly: when a service restarts, the next call after its
 * socket is back should reach it, not wait out a long reconnect backoff.
 */
const channelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.min_reconnect_backoff_ms': 100,
};

export function connectBackends(config: BerthConfig, bus: Bus): Backends {
  const store = createClient(storeV1.StoreService, `unix://${internalSocket(config, 'store')}`, { channelOptions });
  const executor = createClient(executorV1.ExecutorService, `unix://${internalSocket(config, 'executor')}`, { channelOptions });
  return {
    store,
    executor,
    imageInfo: (timeoutMs) => bus.request(subjects.imageInfo, {}, { timeoutMs }),
    close() {
      store.close();
      executor.close();
    },
  };
}
