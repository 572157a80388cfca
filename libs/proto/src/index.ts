// Generated code lives in src/gen (written by `nx run proto:generate`, never
// edited). This file names what the rest of Berth may import.
export * as storeV1 from './gen/berth/store/v1/store.js';
export * as executorV1 from './gen/berth/executor/v1/executor.js';
export * as criV1 from './gen/runtime/v1/api.js';
export { toJson } from './json.js';
export { filterContainers, filterPods } from './cri-filters.js';
export { fullIdLength, isIdPrefix, matchId, resolveId } from './cri-ids.js';
