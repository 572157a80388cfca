export { configSchema } from './schema.js';
export type { BerthConfig } from './schema.js';
export { defaultConfigPath, loadConfig } from './load.js';
export type { LoadConfigOptions } from './load.js';
export { builtinSandboxImage, internalSocket } from './paths.js';
export type { ServiceName } from './paths.js';
export { checkPrivateDir, ensurePrivateDir } from './private-dir.js';
export { berthVersion } from './version.js';
