// Clients for the URLs that the CRI Exec, Attach and PortForward calls return:
// Kubernetes' channel protocol over WebSocket, as the kubelet's streaming
// server (and Berth's) serves it. Every binary message starts with a channel
// byte; the rest is that channel's data.
import { Duplex, type Readable, type Writable } from 'node:stream';
import WebSocket from 'ws';

/** Exec and attach subprotocols, best first: v5 adds closing stdin. */
const execProtocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
const portForwardProtocol = 'v4.channel.k8s.io';

const stdinChannel = 0;
const stdoutChannel = 1;
const stderrChannel = 2;
const statusChannel = 3;
const resizeChannel = 4;
/** v5: the message [255, channel] closes the sender's side of that channel. */
const closeSignal = 255;

/** Stop reading stdin while this many bytes wait to go out on the socket. */
const stdinHighWaterMark = 256 * 1024;
/** A streaming server that accepts the TCP connection but never answers the upgrade is broken. */
const handshakeTimeoutMs = 30_000;

/** TLS settings for https streaming URLs. */
export interface StreamTls {
  /** The CA(s) that signed the streaming server's certificate, when not a public one. */
  ca?: string | Buffer | Array<string | Buffer>;
  rejectUnauthorized?: boolean;
}

/** The Kubernetes Status a server sends on the error channel when a command ends. */
export interface StreamStatus {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

export interface ExecResult {
  /** 0 on Success; the command's code on NonZeroExitCode. */
  exitCode: number;
  status: StreamStatus;
}

/**
 * The stream could not be opened, broke, or ended without an exit code. A
 * failure the server reported (the command could not start, say) carries
 * its Status.
 */
export class StreamingError extends Error {
  constructor(
    message: string,
    readonly status?: StreamStatus,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'StreamingError';
  }
}

export interface ExecStreamOptions {
  /** Sent on the stdin channel; its end closes the remote stdin (on v5). Only for requests made with stdin. */
  stdin?: Readable | null;
  /** Receive the command's output. They are written to, never ended. */
  stdout?: Writable;
  stderr?: Writable;
  tls?: StreamTls;
}

export interface ExecSession {
  /**
   * Settles when the server has sent the command's status and closed the
   * stream, and the output writables have drained: resolves for Success and
   * NonZeroExitCode, rejects with a StreamingError for anything else.
   */
  readonly done: Promise<ExecResult>;
  /** Send bytes to the command's stdin; resolves once they are on the socket. */
  write(data: Uint8Array | string): Promise<void>;
  /** Tell a TTY command its terminal's size, in columns and rows. */
  resize(width: number, height: number): void;
  /** End the command's stdin. A v4 server has no way to hear it: there stdin ends with the stream. */
  closeStdin(): void;
  /** Give up on the command: `done` rejects unless its status has already arrived. */
  close(): void;
}

/**
 * Stream an exec or attach URL (the two speak the same protocol; what flows
 * was fixed by the CRI request). Returns at once: writes and resizes made
 * before the socket opens are sent when it does, and a failure to connect
 * rejects `done`.
 */
export function streamExec(url: string, options: ExecStreamOptions = {}): ExecSession {
  return new ExecStream(url, options);
}

/**
 * One TCP connection to `port` in a pod, over a PortForward URL. Returned at
 * once, it buffers writes until the socket opens. Reading ends when the
 * server closes the stream; the stream errors with the server's error text
 * when it sends one (nothing listening on the port, say). There is no
 * half-close: ending the writable side sends nothing, destroying the stream
 * ends the connection.
 */
export function portForwardConnection(url: string, port: number, options: { tls?: StreamTls } = {}): Duplex {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1-65535, not ${port}`);
  const target = new URL(url);
  // The server takes the port from the query, as kubectl passes it.
  target.searchParams.set('ports', String(port));
  // With one port, its data is on channel 0 and its errors on channel 1.
  const dataChannel = 0;
  const errorChannel = 1;
  const prefaced = new Set<number>();
  let errorText = '';
  let ended = false;
  const stream: Duplex = new Duplex({
    read: () => socket.resume(),
    write: (chunk: Buffer, _encoding, callback) => {
      // The pod closed the connection: as over TCP, later bytes go nowhere.
      if (ended) return callback();
      socket.send(dataChannel, chunk).then(() => callback(), callback);
    },
    destroy: (error, callback) => {
      socket.close();
      callback(error);
    },
  });
  const socket = new ChannelSocket(target.href, [portForwardProtocol], options.tls, {
    message: (channel, payload) => {
      if (channel !== dataChannel && channel !== errorChannel) return;
      if (!prefaced.has(channel)) {
        // Each channel opens with the port it serves, 2 bytes little-endian.
        if (payload.length < 2 || payload.readUInt16LE(0) !== port) {
          return socket.close(new StreamingError(`the server opened channel ${channel} for another port than ${port}`));
        }
        prefaced.add(channel);
        payload = payload.subarray(2);
        if (payload.length === 0) return;
      }
      if (channel === errorChannel) errorText += payload.toString('utf8');
      else if (!stream.push(payload)) socket.pause();
    },
    close: (error) => {
      ended = true;
      // The server's own words (the kubelet's say which ports): the best account of what went wrong.
      if (errorText !== '') stream.destroy(new StreamingError(errorText.trim()));
      else if (error !== undefined) stream.destroy(error);
      else stream.push(null);
    },
  });
  return stream;
}

class ExecStream implements ExecSession {
  readonly done: Promise<ExecResult>;
  readonly #options: ExecStreamOptions;
  readonly #socket: ChannelSocket;
  readonly #status: Buffer[] = [];
  /** Writables that said stop, each with its drain listener. */
  readonly #blocked = new Map<Writable, () => void>();
  #stdin: Readable | undefined;
  #stdinClosed = false;

  constructor(url: string, options: ExecStreamOptions) {
    this.#options = options;
    let settle!: (result: () => ExecResult) => void;
    this.done = new Promise((resolve, reject) => {
      settle = (result) => {
        try {
          resolve(result());
        } catch (err) {
          reject(err as Error);
        }
      };
    });
    // The caller may attach its handler after a failure to connect has
    // already rejected `done`; that must not count as an unhandled rejection.
    this.done.catch(() => undefined);
    this.#socket = new ChannelSocket(url, execProtocols, options.tls, {
      open: () => this.#pumpStdin(),
      message: (channel, payload) => this.#receive(channel, payload),
      close: (error) => {
        this.#detachStdin();
        void this.#flushed().then(() => settle(() => this.#result(error)));
      },
    });
  }

  write(data: Uint8Array | string): Promise<void> {
    if (this.#stdinClosed) return Promise.reject(new StreamingError('stdin is closed'));
    return this.#socket.send(stdinChannel, data);
  }

  resize(width: number, height: number): void {
    // A resize that misses a closed stream has nothing left to resize.
    this.#socket.send(resizeChannel, JSON.stringify({ Width: width, Height: height })).catch(() => undefined);
  }

  closeStdin(): void {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    this.#detachStdin();
    this.#socket.closeChannel(stdinChannel).catch(() => undefined);
  }

  close(): void {
    this.#socket.close(new StreamingError('the session was closed before the command finished'));
  }

  #receive(channel: number, payload: Buffer): void {
    if (channel === stdoutChannel) this.#forward(this.#options.stdout, payload);
    else if (channel === stderrChannel) this.#forward(this.#options.stderr, payload);
    else if (channel === statusChannel) this.#status.push(payload);
  }

  #forward(to: Writable | undefined, payload: Buffer): void {
    if (to === undefined || to.write(payload) || this.#blocked.has(to)) return;
    // Stop reading the socket until the writable drains, so that TCP slows
    // the server down instead of the output piling up in memory.
    const drained = (): void => {
      this.#blocked.delete(to);
      if (this.#blocked.size === 0) this.#socket.resume();
    };
    this.#blocked.set(to, drained);
    to.once('drain', drained);
    this.#socket.pause();
  }

  #pumpStdin(): void {
    const stdin = this.#options.stdin;
    if (stdin == null || this.#stdinClosed) return;
    this.#stdin = stdin;
    stdin.on('data', this.#onStdinData);
    stdin.once('end', this.#onStdinEnd);
    stdin.once('error', this.#onStdinError);
  }

  readonly #onStdinData = (chunk: Buffer | string): void => {
    const stdin = this.#stdin;
    // A failed send ends the stream, and `done` reports that.
    const sent = this.#socket.send(stdinChannel, chunk).catch(() => undefined);
    if (stdin === undefined || this.#socket.bufferedAmount < stdinHighWaterMark) return;
    // The socket is behind: read no more until what was queued has gone out,
    // so a fast producer (a file piped in) is not buffered into memory.
    stdin.pause();
    void sent.then(() => {
      if (this.#stdin === stdin) stdin.resume();
    });
  };

  readonly #onStdinEnd = (): void => this.closeStdin();

  readonly #onStdinError = (err: Error): void => {
    this.#socket.close(new StreamingError(`reading stdin: ${err.message}`, undefined, { cause: err }));
  };

  #detachStdin(): void {
    const stdin = this.#stdin;
    if (stdin === undefined) return;
    this.#stdin = undefined;
    stdin.off('data', this.#onStdinData);
    stdin.off('end', this.#onStdinEnd);
    stdin.off('error', this.#onStdinError);
    // Listening made it flow; paused again, it no longer keeps the process alive.
    stdin.pause();
  }

  /** Resolves once the writables that pushed back have drained (or closed): the output is theirs by then. */
  async #flushed(): Promise<void> {
    const waits = [...this.#blocked].map(([to, drained]) => {
      to.off('drain', drained);
      if (!to.writableNeedDrain || to.destroyed) return undefined;
      return new Promise<void>((resolve) => {
        const done = (): void => {
          to.off('drain', done);
          to.off('close', done);
          resolve();
        };
        to.on('drain', done);
        to.on('close', done);
      });
    });
    this.#blocked.clear();
    await Promise.all(waits);
  }

  /** The command's result once the stream has closed: its status wins over how the stream ended. */
  #result(error: Error | undefined): ExecResult {
    if (this.#status.length > 0) return exitResult(parseStatus(Buffer.concat(this.#status)));
    throw error ?? new StreamingError("the stream ended without the command's status");
  }
}

function parseStatus(raw: Buffer): StreamStatus {
  const text = raw.toString('utf8');
  try {
    const status = JSON.parse(text) as unknown;
    if (typeof status === 'object' && status !== null) return status as StreamStatus;
  } catch {
    // not JSON: reported below as the failure's message
  }
  return { status: 'Failure', message: text.trim() };
}

function exitResult(status: StreamStatus): ExecResult {
  if (status.status === 'Success') return { exitCode: 0, status };
  const code = status.reason === 'NonZeroExitCode' ? status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message : undefined;
  if (code !== undefined && /^\d+$/.test(code)) return { exitCode: Number(code), status };
  throw new StreamingError(status.message || status.reason || 'the command failed', status);
}

interface ChannelHandlers {
  open?(): void;
  /** A message with data; messages of the channel byte alone are dropped. */
  message(channel: number, payload: Buffer): void;
  /** `error` says why, unless the stream closed normally. */
  close(error: Error | undefined): void;
}

/** A WebSocket whose messages are tagged with a channel byte. */
class ChannelSocket {
  readonly #ws: WebSocket;
  /** Sends asked for before the socket opened, in order. */
  readonly #waiting: Array<(error?: Error) => void> = [];
  #error: Error | undefined;
  #opened = false;

  constructor(url: string, protocols: readonly string[], tls: StreamTls | undefined, handlers: ChannelHandlers) {
    // No permessage-deflate: Kubernetes' servers do not offer it, and it
    // would only add latency to a terminal's keystrokes.
    this.#ws = new WebSocket(url, [...protocols], { perMessageDeflate: false, handshakeTimeout: handshakeTimeoutMs, ...tls });
    this.#ws.once('open', () => {
      this.#opened = true;
      for (const send of this.#waiting.splice(0)) send();
      handlers.open?.();
    });
    this.#ws.on('message', (data) => {
      const message = data as Buffer; // binaryType is 'nodebuffer', the default
      // The channel byte alone is a server announcing a channel: no data.
      if (message.length > 1) handlers.message(message[0]!, message.subarray(1));
    });
    this.#ws.on('error', (err) => {
      this.#error ??= new StreamingError(`${this.#opened ? 'the stream failed' : 'cannot open the stream'}: ${err.message}`, undefined, { cause: err });
    });
    this.#ws.once('unexpected-response', (_request, response) => {
      // A refused upgrade says why in its body (an unknown or spent token, say).
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < 1024) body += chunk;
      });
      response.once('end', () => {
        this.#error ??= new StreamingError(`cannot open the stream: HTTP ${response.statusCode}: ${body.slice(0, 1024).trim() || response.statusMessage}`);
        // Handling this event leaves aborting the handshake to us.
        this.#ws.terminate();
      });
      response.once('error', () => this.#ws.terminate());
    });
    this.#ws.once('close', (code, reason) => {
      // 1000 is a normal close; 1005, a close frame without a code.
      const clean = code === 1000 || code === 1005;
      const error = this.#error ?? (clean ? undefined : new StreamingError(`the stream broke (WebSocket close ${code}${reason.length > 0 ? `: ${reason.toString()}` : ''})`));
      for (const send of this.#waiting.splice(0)) send(error ?? new StreamingError('the stream closed'));
      handlers.close(error);
    });
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(channel: number, payload: Uint8Array | string): Promise<void> {
    return this.#whenOpen(() => this.#transmit(Buffer.concat([Buffer.of(channel), typeof payload === 'string' ? Buffer.from(payload) : payload])));
  }

  /** Close our side of a channel: only v5 can say so; on v4 it ends with the stream. */
  closeChannel(channel: number): Promise<void> {
    return this.#whenOpen(() => (this.#ws.protocol === execProtocols[0] ? this.#transmit(Buffer.of(closeSignal, channel)) : Promise.resolve()));
  }

  pause(): void {
    this.#ws.pause();
  }

  resume(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  /** Close the stream; `reason`, when given, is the error it closes with. */
  close(reason?: Error): void {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    this.#error ??= reason;
    this.#ws.close(1000);
  }

  #whenOpen(action: () => Promise<void>): Promise<void> {
    switch (this.#ws.readyState) {
      case WebSocket.CONNECTING:
        return new Promise((resolve, reject) => {
          this.#waiting.push((error) => (error === undefined ? action().then(resolve, reject) : reject(error)));
        });
      case WebSocket.OPEN:
        return action();
      default:
        return Promise.reject(this.#error ?? new StreamingError('the stream is closed'));
    }
  }

  #transmit(message: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.#ws.send(message, (err) => (err ? reject(err) : resolve())));
  }
}
