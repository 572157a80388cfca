export { buildService, encodeOnce } from './server.js';
export type { BidiStreamHandler, CallContext, Handlers, ServeOptions, ServerStreamHandler, UnaryHandler } from './server.js';
export { createClient } from './client.js';
export type { BidiCall, CallOpts, ClientOpts, PromiseClient } from './client.js';
export { bindUnixSocket, claimSocketPath, socketIsLive } from './unix-socket.js';
export type { UnixListener, UnixListenOptions } from './unix-socket.js';
export { metadataGetter, metadataSetter } from './trace-metadata.js';
export type { BidiStreamMethods, MethodDefinition, RequestOf, ResponseOf, ServerStreamMethods, ServiceDefinition, UnaryMethods } from './types.js';
export { bulkChannelOptions, createGrpcServer, flowControlWindow } from './server-factory.js';
