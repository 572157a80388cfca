import { chown, chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { FailedPreconditionError, wrap } from '@berth/errors';

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
}

/** Binds a grpc-js server to a unix socket after claiming the path, with the socket's mode set before anyone can connect. */
export async function bindUnixSocket(server: Server, path: string, options: UnixListenOptions = {}): Promise<void> {
  await claimSocketPath(path);
  const mode = options.mode ?? 0o600;
  const previous = process.umask(0o777 & ~mode);
  try {
    await new Promise<number>((resolve, reject) => {
      server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
  } catch (err) {
    throw wrap(err, `listen on ${path}`);
  } finally {
    process.umask(previous);
  }
  await chmod(path, mode);
  if (options.gid !== undefined) await chown(path, process.getuid?.() ?? 0, options.gid);
}
