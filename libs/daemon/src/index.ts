export { runDaemon } from './daemon.js';
export type { DaemonContext, DaemonSpec } from './daemon.js';
export { berthVersion } from '@berth/config';
export { serveGrpc } from './grpc-server.js';
export type { ServiceBinding } from './grpc-server.js';
