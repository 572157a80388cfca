// berthctl's streaming commands: exec and attach (-i, -t as crictl's) and
// port-forward (as kubectl's), over the URLs the CRI streaming calls return.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { portForwardConnection, streamExec, type CriClient, type ExecSession } from '@berth/client';
import type { Output } from './commands.js';

export interface StreamFlags {
  /** -i: pass berthctl's stdin to the command. */
  interactive: boolean;
  /** -t: the command has a terminal. */
  tty: boolean;
}

/** `berthctl exec [-i] [-t] CTR CMD...`: resolves to the command's exit code. */
export async function execCommand(cri: CriClient, id: string, cmd: string[], flags: StreamFlags): Promise<number> {
  // With a terminal, the command's stderr is that terminal: there is no stderr stream.
  const { url } = await cri.runtime.exec({ containerId: id, cmd, tty: flags.tty, stdin: flags.interactive, stdout: true, stderr: !flags.tty });
  return await streamTerminal(url, flags);
}

/** `berthctl attach [-i] [-t] CTR`: -t must match the container's own tty setting. */
export async function attachCommand(cri: CriClient, id: string, flags: StreamFlags): Promise<number> {
  const { url } = await cri.runtime.attach({ containerId: id, tty: flags.tty, stdin: flags.interactive, stdout: true, stderr: !flags.tty });
  return await streamTerminal(url, flags);
}

async function streamTerminal(url: string, flags: StreamFlags): Promise<number> {
  const session = streamExec(url, { stdin: flags.interactive ? process.stdin : null, stdout: process.stdout, stderr: process.stderr });
  const restore = flags.tty ? useTerminal(session, flags.interactive) : () => undefined;
  try {
    return (await session.done).exitCode;
  } finally {
    restore();
  }
}

/**
 * Hand the local terminal to a TTY session: raw input (so ^C, ^D and the
 * arrow keys reach the command, not berthctl) and the window's size, now
 * and on every resize. Returns what puts the terminal back.
 */
function useTerminal(session: ExecSession, interactive: boolean): () => void {
  const raw = interactive && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const resize = (): void => session.resize(process.stdout.columns, process.stdout.rows);
  if (process.stdout.isTTY) {
    resize();
    process.stdout.on('resize', resize); // SIGWINCH
  }
  return () => {
    process.stdout.off('resize', resize);
    if (raw) process.stdin.setRawMode(false);
  };
}

export interface PortMapping {
  /** 0: any free port. */
  local: number;
  remote: number;
}

/** `8080:80`, `8080` (the same port on both ends) or `:80` (any free local port). */
export function parsePortMapping(spec: string): PortMapping {
  const port = (text: string): number => {
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= 1 && n <= 65535)) throw new Error(`bad port ${JSON.stringify(text)} in ${JSON.stringify(spec)}: ports are 1-65535`);
    return n;
  };
  const colon = spec.indexOf(':');
  if (colon < 0) return { local: port(spec), remote: port(spec) };
  return { local: colon === 0 ? 0 : port(spec.slice(0, colon)), remote: port(spec.slice(colon + 1)) };
}

/**
 * `berthctl port-forward POD [LOCAL:]REMOTE...`: listens on 127.0.0.1 and
 * carries each accepted connection to the pod over a PortForward stream of
 * its own (a streaming URL serves one connection), until `signal` aborts.
 */
export async function portForwardCommand(cri: CriClient, out: Output, err: Output, podId: string, specs: string[], signal: AbortSignal): Promise<void> {
  const mappings = specs.map(parsePortMapping);
  const sockets = new Set<Socket>();
  const servers: Server[] = [];
  try {
    for (const { local, remote } of mappings) {
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        void forwardConnection(cri, out, err, podId, remote, socket);
      });
      servers.push(server);
      server.listen(local, '127.0.0.1');
      await once(server, 'listening');
      out(`Forwarding from 127.0.0.1:${(server.address() as AddressInfo).port} -> ${remote}\n`);
    }
    if (!signal.aborted) await once(signal, 'abort');
  } finally {
    for (const server of servers) server.close();
    for (const socket of sockets) socket.destroy();
  }
}

async function forwardConnection(cri: CriClient, out: Output, err: Output, podId: string, remote: number, socket: Socket): Promise<void> {
  out(`Handling connection for ${socket.localPort ?? remote}\n`);
  // Until the pipeline takes the socket over, a reset from the client must not take berthctl down.
  const early = (): void => undefined;
  socket.on('error', early);
  try {
    const { url } = await cri.runtime.portForward({ podSandboxId: podId, port: [remote] });
    socket.off('error', early);
    await splice(socket, portForwardConnection(url, remote));
  } catch (e) {
    // One connection's failure is reported; the others and the listener carry on.
    err(`port-forward ${remote}: ${(e as Error).message}\n`);
    socket.destroy();
  }
}

/**
 * Join a client's TCP connection to the pod's until the client's closes
 * (after the pod's end has been passed on, or on an error). Not a
 * pipeline: the two ends close independently, and neither is an error.
 */
function splice(socket: Socket, remote: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.pipe(remote);
    remote.pipe(socket);
    remote.once('error', reject);
    socket.once('error', reject);
    socket.once('close', () => {
      remote.destroy();
      resolve();
    });
  });
}
