export { formatReference, parseReference, repositoryName } from './reference.js';
export type { ImageReference } from './reference.js';
export { parseChallenge, RegistryClient } from './client.js';
export type { RegistryClientOptions, RegistryCredentials, RegistryResponse } from './client.js';
export { resolveEndpoints } from './hosts.js';
export type { EndpointTls, RegistryEndpoint } from './hosts.js';
