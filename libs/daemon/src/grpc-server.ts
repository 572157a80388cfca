import type { Server, UntypedServiceImplementation } from '@grpc/grpc-js';
import { bindUnixSocket, createGrpcServer, type UnixListenOptions } from '@berth/rpc';
import type { DaemonContext } from './daemon.js';

export interface ServiceBinding {
  definition: object;
  implementation: UntypedServiceImplementation;
}

/**
 * Serves gRPC services on a unix socket for the life of the daemon: the
 * socket is claimed (never stolen from a live server), and on shutdown the
 * server drains for up to 5 s before calls are cut.
 */
export async function serveGrpc(ctx: DaemonContext, path: string, services: ServiceBinding[], options: UnixListenOptions = {}): Promise<Server> {
  const server = createGrpcServer();
  for (const s of services) server.addService(s.definition as never, s.implementation);
  const listener = await bindUnixSocket(server, path, options);
  ctx.onShutdown(
    () =>
      new Promise<void>((resolve) => {
        listener.close();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  );
  ctx.logger.info({ socket: path }, 'serving gRPC');
  return server;
}
