import type { criV1 } from '@berth/proto';

/** The CRI API version the kubelet negotiates; "0.1.0" is what every CRI runtime answers. */
const kubeletApiVersion = '0.1.0';

/** Version: the runtime's name and versions. Needs no other service. */
export function createVersionHandler(berthVersion: string) {
  return async (_request: criV1.VersionRequest): Promise<criV1.VersionResponse> => ({
    version: kubeletApiVersion,
    runtimeName: 'berth',
    runtimeVersion: berthVersion,
    runtimeApiVersion: 'v1',
  });
}
