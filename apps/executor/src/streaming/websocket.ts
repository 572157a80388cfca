// Kubernetes streaming over WebSocket: every binary message starts with a
// channel byte. Remote command: 0 stdin, 1 stdout, 2 stderr, 3 error
// (the outcome), 4 resize; v5 adds [255, n], "channel n is closed", which
// is how a client ends stdin. Port forward: for the i-th port of the `ports`
// query, channel 2i carries data and 2i+1 errors, and each starts with the
// port number (2 bytes, little endian).
import { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Channels, Outcome } from './channels.js';
import { encodeOutcome, ResizeFeed } from './channels.js';
import { dialPod, type PodConnection } from './portforward.js';
import type { StdioWanted } from './spdy-streams.js';

export const wsRemoteCommandProtocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
export const wsPortForwardProtocols = ['v4.channel.k8s.io', 'portforward.k8s.io'];
const closeSignal = 255;

/** A message on `channel`. */
const frame = (channel: number, data: Buffer): Buffer => Buffer.concat([Buffer.from([channel]), data]);

/** A Writable sending each chunk as one message on `channel`; its callback waits for the socket. */
function channelWriter(ws: WebSocket, channel: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (ws.readyState !== ws.OPEN) return cb();
      ws.send(frame(channel, chunk), { binary: true }, () => cb());
    },
  });
}

export function wsRemoteCommandChannels(ws: WebSocket, wanted: StdioWanted): Channels {
  const gone = new AbortController();
  let finished = false;
  ws.once('close', () => finished || gone.abort());
  const stdin = wanted.stdin ? new Readable({ read: () => ws.resume() }) : undefined;
  const resizes = new ResizeFeed();
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0) return;
    const payload = data.subarray(1);
    if (data[0] === 0 && stdin && !stdin.readableEnded) {
      if (!stdin.push(payload)) ws.pause();
    } else if (data[0] === 4 && wanted.tty) {
      resizes.push(payload);
    } else if (data[0] === closeSignal && payload[0] === 0 && ws.protocol === 'v5.channel.k8s.io') {
      stdin?.push(null);
    }
  });
  ws.once('close', () => stdin?.push(null));
  return {
    stdin,
    stdout: wanted.stdout ? channelWriter(ws, 1) : undefined,
    stderr: wanted.stderr && !wanted.tty ? channelWriter(ws, 2) : undefined,
    onResize: (fn) => resizes.on(fn),
    gone: gone.signal,
    finish(outcome: Outcome) {
      finished = true;
      if (ws.readyState !== ws.OPEN) return;
      ws.send(frame(3, encodeOutcome(outcome, true)!), { binary: true });
      ws.close(1000);
    },
  };
}

/** Ports from the `ports` query (repeated or comma-separated). */
export function portsOfQuery(query: URLSearchParams): number[] {
  return query
    .getAll('ports')
    .flatMap((v) => v.split(','))
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map(Number);
}

/** One TCP connection per port of the query, for the WebSocket's lifetime. */
export function wsPortForward(ws: WebSocket, ports: number[], netns: string | undefined): Promise<void> {
  const connections: PodConnection[] = [];
  const send = (channel: number, data: Buffer) => ws.readyState === ws.OPEN && ws.send(frame(channel, data), { binary: true });
  let open = ports.length;
  ports.forEach((port, i) => {
    const preamble = Buffer.alloc(2);
    preamble.writeUInt16LE(port);
    send(2 * i, preamble);
    send(2 * i + 1, preamble);
    const c = dialPod(netns, port);
    connections.push(c);
    c.stream.on('data', (d: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      // Back-pressure: while the client's socket is behind, stop reading the pod until this message is out.
      const behind = ws.bufferedAmount > 1 << 20;
      if (behind) c.stream.pause();
      ws.send(frame(2 * i, d), { binary: true }, () => behind && c.stream.resume());
    });
    c.stream.on('error', () => undefined);
    void c.ended.then((message) => {
      if (message !== undefined) send(2 * i + 1, Buffer.from(message));
      if (--open === 0) ws.close(1000);
    });
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0 || data[0]! % 2 !== 0) return;
    const c = connections[data[0]! / 2];
    if (c !== undefined && !c.stream.write(data.subarray(1))) {
      ws.pause();
      c.stream.once('drain', () => ws.resume());
    }
  });
  return new Promise((resolve) => {
    ws.once('close', () => {
      for (const c of connections) c.kill();
      resolve();
    });
  });
}
