export { connectCri, defaultSocket } from './cri-client.js';
export type { CriClient } from './cri-client.js';
