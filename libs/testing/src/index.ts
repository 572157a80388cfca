export { busyboxBinary, busyboxRootfs, sharedLibraries } from './busybox.js';
export { startRegistry } from './registry.js';
export type { RegistryHandle } from './registry.js';
export { startStack } from './stack.js';
export type { StackHandle, StackOptions, StackService } from './stack.js';
export { freeLoopbackPort, startNatsServer } from '@berth/bus';
export type { NatsServerHandle } from '@berth/bus';
export { freshPostgresDatabase, postgresTestUrl } from './postgres.js';
