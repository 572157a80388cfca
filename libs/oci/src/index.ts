export { buildImage, tarLayer } from './build.js';
export type { BuildImageOptions, BuiltImage, LayerEntry } from './build.js';
export { readOciLayout, writeOciLayout } from './layout.js';
export { pushImage } from './registry-push.js';
