import { chown, chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { dirname } from 'node:path';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { FailedPreconditionError, wrap } from '@berth/errors';
import { routeConnection } from './authority-relay.js';
import { tuneHttp2Sessions } from './server-factory.js';

/** True when something accepts connections on the unix socket at `path`. */
export function socketIsLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (live: boolean): void => {
      socket.destroy();
      resolve(live);
    };
    socket.setTimeout(timeoutMs, () => done(true)); // accepted but silent still counts as live
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Makes `path` free for a new listener: a socket file nobody serves (left by a
 * crash) is removed; a live socket or a file that is not a socket is left
 * alone and FailedPreconditionError is thrown, so a second Berth never steals
 * the socket of a running one.
 */
export async function claimSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw wrap(err, `inspect ${path}`);
  }
  if (!stat.isSocket()) throw new FailedPreconditionError(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketIsLive(path)) throw new FailedPreconditionError(`another process is already serving on ${path}`);
  await unlink(path);
}

export interface UnixListenOptions {
  /** File mode of the socket; 0600 unless given. */
  mode?: number;
  /** Group owner of the socket (the owner is always the running user). */
  gid?: number;
  /**
   * Serve gRPC-Go clients that send the socket path as `:authority` (the
   * kubelet up to 1.30, crictl): connections are routed as
   * authority-relay.ts describes. For sockets such clients dial; Berth's own
   * internal sockets need not.
   */
  acceptPathAuthority?: boolean;
}

/** A socket being served; {@link close} stops accepting (the gRPC server's shutdown ends the connections). */
export interface UnixListener {
  close(): void;
}

/** Binds a grpc-js server to a unix socket after claiming the path, with the socket's mode set before anyone can connect. */
export async function bindUnixSocket(server: Server, path: string, options: UnixListenOptions = {}): Promise<UnixListener> {
  await claimSocketPath(path);
  const mode = options.mode ?? 0o600;
  const previous = process.umask(0o777 & ~mode);
  let listener: UnixListener;
  try {
    listener = options.acceptPathAuthority ? await listenRouted(server, path) : await listenDirect(server, path);
  } catch (err) {
    throw wrap(err, `listen on ${path}`);
  } finally {
    process.umask(previous);
  }
  await chmod(path, mode);
  if (options.gid !== undefined) await chown(path, process.getuid?.() ?? 0, options.gid);
  return listener;
}

async function listenDirect(server: Server, path: string): Promise<UnixListener> {
  await new Promise<number>((resolve, reject) => {
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
  return { close: () => undefined };
}

async function listenRouted(server: Server, path: string): Promise<UnixListener> {
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  tuneHttp2Sessions(server);
  const listener: NetServer = createServer((socket) => routeConnection(socket, injector));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  return { close: () => listener.close() };
}
