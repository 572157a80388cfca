import type { BerthConfig } from '@berth/config';
import { toJson, type criV1 } from '@berth/proto';
import { checkNodeHealth } from '../node-health.js';
import type { Backends } from '../backends.js';

/**
 * Status: RuntimeReady is true only when the store, executor and image
 * services all answer and the OCI runtime works; NetworkReady reflects the
 * executor's check of the CNI configuration. With `verbose`, `info` holds
 * JSON documents describing each service and the effective configuration.
 */
export function createStatusHandler(backends: Backends, config: BerthConfig) {
  return async (request: criV1.StatusRequest): Promise<criV1.StatusResponse> => {
    const health = await checkNodeHealth(backends);
    const problems: string[] = [];
    for (const service of [health.store, health.executor, health.image]) if (!service.ok) problems.push(service.message);
    const runtime = health.executor.info?.runtime;
    if (runtime !== undefined && !runtime.ready) problems.push(`OCI runtime not usable: ${runtime.message}`);
    const runtimeReady: criV1.RuntimeCondition = {
      type: 'RuntimeReady',
      status: problems.length === 0,
      reason: problems.length === 0 ? '' : 'BerthServicesNotReady',
      message: problems.join('; '),
    };
    const network = health.executor.info?.network;
    const networkReady: criV1.RuntimeCondition =
      network === undefined
        ? { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'executor service unavailable: network state unknown' }
        : { type: 'NetworkReady', status: network.ready, reason: network.reason, message: network.message };
    const info: Record<string, string> = {};
    if (request.verbose) {
      info['services'] = toJson(health);
      info['config'] = JSON.stringify(config);
    }
    const noFeatures: criV1.RuntimeHandlerFeatures = { recursiveReadOnlyMounts: false, userNamespaces: false };
    return {
      status: { conditions: [runtimeReady, networkReady] },
      info,
      runtimeHandlers: [
        { name: '', features: noFeatures },
        { name: 'runc', features: noFeatures },
      ],
      features: { supplementalGroupsPolicy: false, userNamespacesHostNetwork: false, mountOptions: false },
    };
  };
}
