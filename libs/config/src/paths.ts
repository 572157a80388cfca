import { join } from 'node:path';
import type { BerthConfig } from './schema.js';

export type ServiceName = 'cri' | 'image' | 'store' | 'executor';

/** The internal gRPC socket of a service, under the run dir. */
export function internalSocket(config: Pick<BerthConfig, 'runDir'>, service: 'store' | 'executor'): string {
  return join(config.runDir, 'internal', `${service}.sock`);
}

/** The name of Berth's built-in sandbox (pause) image once imported into the store. */
export function builtinSandboxImage(version: string): string {
  return `berth.local/pause:${version}`;
}
