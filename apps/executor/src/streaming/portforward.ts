// A TCP connection to a port inside a pod's network namespace. Node cannot
// enter a namespace per socket, so each connection is a `socat` started in
// the pod's namespace by nsenter, connected to 127.0.0.1:<port> there, its
// stdio carrying the bytes (pipes: back-pressure for free). Pods on the host
// network are dialled directly.
import { connect } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { spawnProcess, type SpawnedProcess } from '@berth/native';

export interface PodConnection {
  stream: Duplex;
  /** Resolves with an error message when the connection failed or broke, undefined on a clean end. */
  ended: Promise<string | undefined>;
  /** Ends it at once (the client went away). */
  kill(): void;
}

/**
 * Why `port` may not be forwarded — not a TCP port, or not among the ports
 * the PortForward request named (when it named any) — or undefined.
 * `shown` is how the client spelt it.
 */
export function portRefusal(port: number, allowed: number[], shown: string = String(port)): string | undefined {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `port ${JSON.stringify(shown)} is not a TCP port (1-65535)`;
  if (allowed.length > 0 && !allowed.includes(port)) return `port ${port} was not among the ports of the PortForward request (${allowed.join(', ')})`;
  return undefined;
}

export function dialPod(netns: string | undefined, port: number): PodConnection {
  if (netns === undefined) {
    const socket = connect({ host: '127.0.0.1', port });
    const ended = new Promise<string | undefined>((resolve) => {
      socket.on('error', (err) => resolve(`connecting to 127.0.0.1:${port}: ${err.message}`));
      socket.on('close', () => resolve(undefined));
    });
    return { stream: socket, ended, kill: () => socket.destroy() };
  }
  // -t: after one side ends, how long the other may still send (an HTTP client may half-close before the answer).
  let child: SpawnedProcess;
  try {
    child = spawnProcess('nsenter', [`--net=${netns}`, '--', 'socat', '-t', '60', '-', `TCP4:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const stream = new PassThrough();
    stream.end();
    return { stream, ended: Promise.resolve(`cannot start socat in the pod's network namespace: ${(err as Error).message}`), kill: () => undefined };
  }
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const ended = child.closed.then(({ code, signal }) => {
    if (code === 0 || signal === 'SIGKILL') return undefined;
    // socat says e.g. "2026/11/28 23:59:59 socat[123] E connect(5, AF=2 127.0.0.1:81, 16): Connection refused".
    const reason = /\bE (.*)$/m.exec(stderr)?.[1]?.replace(/^connect\([^)]*\):\s*/, '') ?? (stderr.trim() || `socat exited with ${code}`);
    return `error forwarding port ${port} to pod: ${reason}`;
  });
  return { stream: Duplex.from({ readable: child.stdout!, writable: child.stdin! }), ended, kill: () => void child.kill('SIGKILL') };
}
