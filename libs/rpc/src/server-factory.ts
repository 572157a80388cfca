import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { Server, type ServerOptions } from '@grpc/grpc-js';

/** HTTP/2 flow-control window for Berth's connections: enough to keep a unix socket busy. */
export const flowControlWindow = 16 * 1024 * 1024;

/** The largest HTTP/2 frame a peer may send us (the protocol's maximum): fewer frames per 1 MiB message. */
const maxFrameSize = 16_777_215;

/**
 * A grpc-js server tuned for bulk transfers over local sockets. grpc-js keeps
 * HTTP/2's 64 KiB default windows on the server side, which caps a blob
 * upload at a window update per 64 KiB; here every session gets 16 MiB
 * windows (stream and connection). grpc-js exposes no option for this, so
 * the settings are set on its HTTP/2 servers directly (checked by a test).
 */
export function createGrpcServer(options: ServerOptions = {}): Server {
  const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, ...options });
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (internals.commonServerOptions !== undefined) {
    internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: flowControlWindow, maxFrameSize: maxFrameSize };
  }
  const originalBind = server.bindAsync.bind(server);
  server.bindAsync = (port, creds, callback) =>
    originalBind(port, creds, (err, boundPort) => {
      tuneHttp2Sessions(server);
      callback(err, boundPort);
    });
  return server;
}

/**
 * Gives every session of `server`'s HTTP/2 servers (its listeners and
 * connection injectors) the 16 MiB connection window; call it after a
 * listener or injector is added. Servers already tuned are left alone.
 */
export function tuneHttp2Sessions(server: Server): void {
  const internals = server as unknown as { http2Servers?: Map<Http2Server, unknown> };
  for (const http2Server of internals.http2Servers?.keys() ?? []) {
    if ((http2Server as unknown as { berthTuned?: boolean }).berthTuned) continue;
    (http2Server as unknown as { berthTuned?: boolean }).berthTuned = true;
    http2Server.on('session', (session: ServerHttp2Session) => {
      session.once('localSettings', () => {
        try {
          session.setLocalWindowSize(flowControlWindow);
        } catch {
          // the session closed first
        }
      });
    });
  }
}

/** Client channel options matching the server's windows. */
export const bulkChannelOptions = { 'grpc-node.flow_control_window': flowControlWindow } as const;
