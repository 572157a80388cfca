import type { executorV1, storeV1 } from '@berth/proto';
import type { ImageServiceInfo } from '@berth/bus';
import type { Backends } from './backends.js';

export interface ServiceHealth<T> {
  ok: boolean;
  message: string;
  info?: T;
}

export interface NodeHealth {
  store: ServiceHealth<storeV1.InfoResponse>;
  executor: ServiceHealth<executorV1.InfoResponse>;
  image: ServiceHealth<ImageServiceInfo>;
}

async function probe<T>(name: string, call: () => Promise<T>): Promise<ServiceHealth<T>> {
  try {
    return { ok: true, message: '', info: await call() };
  } catch (err) {
    return { ok: false, message: `${name} service unavailable: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * Asks every internal service how it is, in parallel, each with a short
 * deadline, so that Status answers quickly even when a service is down.
 */
export async function checkNodeHealth(backends: Backends, timeoutMs = 1000): Promise<NodeHealth> {
  const [store, executor, image] = await Promise.all([
    probe('store', () => backends.store.info({}, { timeoutMs })),
    probe('executor', () => backends.executor.info({}, { timeoutMs })),
    probe('image', () => backends.imageInfo(timeoutMs)),
  ]);
  return { store, executor, image };
}
