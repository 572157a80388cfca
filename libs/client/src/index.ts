export { connectCri, defaultSocket, imageSpec } from './cri-client.js';
export type { CriClient } from './cri-client.js';
export { portForwardConnection, streamExec, StreamingError } from './streaming.js';
export type { ExecResult, ExecSession, ExecStreamOptions, StreamStatus, StreamTls } from './streaming.js';
