export { configSchema } from './schema.js';
export type { BerthConfig } from './schema.js';
export { defaultConfigPath, loadConfig } from './load.js';
export type { LoadConfigOptions } from './load.js';
export { internalSocket } from './paths.js';
export type { ServiceName } from './paths.js';
export { berthVersion } from './version.js';
