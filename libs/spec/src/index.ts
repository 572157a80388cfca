export { isDigest, parseDigest, sha256Digest } from './digest.js';
export type { Digest, DigestAlgorithm, ParsedDigest } from './digest.js';
export { layerCompression, MediaType } from './media-types.js';
export type { LayerCompression } from './media-types.js';
export { refNameAnnotation } from './oci-image.js';
export type { Descriptor, ImageConfig, ImageIndex, ImageManifest, ImageRuntimeConfig, Platform } from './oci-image.js';
export { nodePlatform } from './platform.js';
