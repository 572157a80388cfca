// Kubernetes' use of SPDY streams: remote command (exec, attach) opens one
// stream per stdio channel plus `error` and `resize`, named by the
// `streamtype` header; port forwarding opens a `data` and an `error` stream
// per connection, paired by `requestid`.
import type { Channels, Outcome } from './channels.js';
import { encodeOutcome, ResizeFeed } from './channels.js';
import { dialPod, portRefusal, type PodConnection } from './portforward.js';
import type { SpdySession, SpdyStream } from './spdy.js';

/** Remote-command protocols, most preferred first; v4 reports the outcome as a Status object. */
export const remoteCommandProtocols = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const portForwardProtocols = ['portforward.k8s.io'];

export interface StdioWanted {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/**
 * Waits for the streams a remote-command client opens for `wanted` and
 * turns them into Channels. Fails when they do not all arrive in time.
 */
export function remoteCommandChannels(session: SpdySession, protocol: string, wanted: StdioWanted, timeoutMs: number): Promise<Channels> {
  const withResize = wanted.tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io';
  const expected = new Set(['error', ...(wanted.stdin ? ['stdin'] : []), ...(wanted.stdout ? ['stdout'] : []), ...(wanted.stderr && !wanted.tty ? ['stderr'] : []), ...(withResize ? ['resize'] : [])]);
  const streams = new Map<string, SpdyStream>();
  const gone = new AbortController();
  session.once('close', () => gone.abort());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for the client's streams (${[...expected].filter((t) => !streams.has(t)).join(', ')})`)), timeoutMs);
    session.once('close', () => {
      clearTimeout(timer);
      reject(new Error('the client went away before opening its streams'));
    });
    session.on('stream', (stream: SpdyStream) => {
      const type = stream.headers['streamtype'] ?? '';
      if (!expected.has(type) || streams.has(type)) return void stream.destroy();
      streams.set(type, stream);
      if (streams.size < expected.size) return;
      clearTimeout(timer);
      resolve(channelsOf(session, streams, protocol === 'v4.channel.k8s.io', gone.signal));
    });
  });
}

function channelsOf(session: SpdySession, streams: Map<string, SpdyStream>, jsonStatus: boolean, gone: AbortSignal): Channels {
  const resizes = new ResizeFeed();
  const resize = streams.get('resize');
  resize?.on('data', (d: Buffer) => resizes.push(d));
  const stdin = streams.get('stdin');
  return {
    stdin,
    stdout: streams.get('stdout'),
    stderr: streams.get('stderr'),
    onResize: (fn) => resizes.on(fn),
    gone,
    finish(outcome: Outcome) {
      const error = streams.get('error')!;
      const status = encodeOutcome(outcome, jsonStatus);
      if (status !== undefined) error.write(status);
      for (const s of streams.values()) if (s !== stdin && s !== resize) s.end();
      session.close();
    },
  };
}

interface PortPair {
  data?: SpdyStream;
  error?: SpdyStream;
  port: number;
  timer: NodeJS.Timeout;
}

/**
 * Serves a port-forward connection: each data/error stream pair becomes one
 * TCP connection to the pod. `allowed` (the CRI request's ports) limits the
 * ports when not empty. Resolves when the client closes the connection.
 */
export function servePortForward(session: SpdySession, netns: string | undefined, allowed: number[], timeoutMs: number): Promise<void> {
  const pairs = new Map<string, PortPair>();
  const open = new Set<PodConnection>();
  session.on('stream', (stream: SpdyStream) => {
    const type = stream.headers['streamtype'];
    const port = Number(stream.headers['port']);
    // Clients older than requestid pair the error stream (id n) with the data stream (id n+2).
    const key = stream.headers['requestid'] ?? String(type === 'data' ? stream.id - 2 : stream.id);
    if (type !== 'data' && type !== 'error') return void stream.destroy();
    let pair = pairs.get(key);
    if (pair === undefined) {
      const timer = setTimeout(() => {
        pairs.delete(key);
        pair?.error?.end(`timed out waiting for the ${pair.data ? 'error' : 'data'} stream of request ${key}`);
        pair?.data?.end();
      }, timeoutMs);
      pair = { port, timer };
      pairs.set(key, pair);
    }
    if (pair[type] !== undefined) return void stream.destroy();
    pair[type] = stream;
    if (pair.data === undefined || pair.error === undefined) return;
    clearTimeout(pair.timer);
    pairs.delete(key);
    forward(pair.data, pair.error, port, netns, allowed, open);
  });
  return new Promise((resolve) => {
    session.once('close', () => {
      for (const c of open) c.kill();
      for (const p of pairs.values()) clearTimeout(p.timer);
      resolve();
    });
  });
}

function forward(data: SpdyStream, error: SpdyStream, port: number, netns: string | undefined, allowed: number[], open: Set<PodConnection>): void {
  const refusal = portRefusal(port, allowed, data.headers['port'] ?? '');
  if (refusal !== undefined) {
    error.end(refusal);
    return void data.end();
  }
  const connection = dialPod(netns, port);
  open.add(connection);
  data.pipe(connection.stream).on('error', () => undefined);
  connection.stream.pipe(data);
  data.on('close', () => connection.kill());
  void connection.ended.then((message) => {
    open.delete(connection);
    if (message !== undefined) error.write(message);
    error.end();
    data.end();
  });
}
