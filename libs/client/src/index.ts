export { connectCri, defaultSocket, imageSpec } from './cri-client.js';
export type { CriClient } from './cri-client.js';
