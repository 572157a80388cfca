import { UnavailableError } from '@berth/errors';
import { criV1 } from '@berth/proto';
import type { Backends } from '../backends.js';

/** RuntimeConfig: the cgroup driver the executor actually uses, so the kubelet can match it. */
export function createRuntimeConfigHandler(backends: Backends) {
  return async (_request: criV1.RuntimeConfigRequest): Promise<criV1.RuntimeConfigResponse> => {
    let driver: string;
    try {
      driver = (await backends.executor.info({}, { timeoutMs: 2000 })).cgroupDriver;
    } catch (err) {
      throw new UnavailableError('runtime config: the executor service is unavailable', { cause: err });
    }
    return { linux: { cgroupDriver: driver === 'systemd' ? criV1.CgroupDriver.SYSTEMD : criV1.CgroupDriver.CGROUPFS } };
  };
}
