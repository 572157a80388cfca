export { buildImage, tarLayer } from './build.js';
export type { BuildImageOptions, BuiltImage, LayerEntry } from './build.js';
export { readOciLayout, writeOciLayout } from './layout.js';
export { pushBlobs, pushImage, pushManifest } from './registry-push.js';
export type { PushOptions } from './registry-push.js';
