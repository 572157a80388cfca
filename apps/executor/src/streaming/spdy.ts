// The server side of SPDY/3.1 as Kubernetes clients speak it after an HTTP
// upgrade (client-go's remotecommand and portforward, over moby/spdystream):
// the client opens streams with SYN_STREAM, the server answers each with
// SYN_REPLY, and both send DATA frames until FIN. Each stream is a Node
// Duplex, so `pipe` carries back-pressure to and from the process.
//
// Flow control: spdystream neither sends nor honours WINDOW_UPDATE, so
// Berth does not wait for send windows (it would stall after 64 KiB); it
// does send WINDOW_UPDATE for what it receives, for peers that count.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { constants as zlibConstants, createInflate, type Inflate } from 'node:zlib';

const frameType = { synStream: 1, synReply: 2, rstStream: 3, settings: 4, ping: 6, goAway: 7, headers: 8, windowUpdate: 9 } as const;
const flagFin = 0x01;
const rstStatus = { protocolError: 1, invalidStream: 2, refusedStream: 3, cancel: 5 } as const;

/** Largest frame accepted; Kubernetes clients send stdin in chunks of a few KiB. */
const maxFrameBytes = 1 << 20;
/** Largest decompressed header block (a compressed bomb stops here). */
const maxHeaderBytes = 64 << 10;
const maxHeaderPairs = 64;
/** Unparsed input beyond this pauses the socket until frames are handled. */
const maxPendingInput = 2 << 20;

/**
 * The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1):
 * length-prefixed header names and values, then a run of common text.
 */
const dictionaryWords = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language', 'accept-ranges', 'age', 'allow',
  'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5',
  'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'retry-after',
  'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning', 'www-authenticate', 'method', 'get', 'status', '200 OK',
  'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
];
const dictionaryTail =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content' +
  '301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,' +
  'application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
export const spdyDictionary = Buffer.concat([
  ...dictionaryWords.map((w) => {
    const b = Buffer.alloc(4 + w.length);
    b.writeUInt32BE(w.length);
    b.write(w, 4, 'latin1');
    return b;
  }),
  Buffer.from(dictionaryTail, 'latin1'),
]);

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

export type SpdyHeaders = Record<string, string>;

/** Encodes a v3 header block: a count, then length-prefixed names and values. */
export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [u32(Object.keys(headers).length)];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name.toLowerCase());
    const v = Buffer.from(value);
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Decodes a v3 header block; multiple values of one name (NUL-separated) are kept joined by NUL. */
export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  let at = 0;
  const take = (n: number): Buffer => {
    if (at + n > block.length) throw new Error('header block is truncated');
    const b = block.subarray(at, at + n);
    at += n;
    return b;
  };
  const count = take(4).readUInt32BE();
  if (count > maxHeaderPairs) throw new Error(`header block has ${count} pairs (at most ${maxHeaderPairs})`);
  const headers: SpdyHeaders = Object.create(null) as SpdyHeaders;
  for (let i = 0; i < count; i++) {
    const name = take(take(4).readUInt32BE()).toString('latin1');
    const value = take(take(4).readUInt32BE()).toString('latin1');
    if (name === '' || name !== name.toLowerCase()) throw new Error(`header name ${JSON.stringify(name)} is empty or not lower case`);
    if (name in headers) throw new Error(`header ${name} appears twice`);
    headers[name] = value;
  }
  return headers;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/**
 * The sending half of SPDY header compression. Each header block is written
 * as stored (uncompressed) deflate blocks of one zlib stream that names the
 * SPDY dictionary, ended by an empty stored block — the sync-flush marker,
 * which tells the peer's inflater that the block is complete (Go's stops
 * there instead of reading on into the next frame). The few bytes a server
 * sends are not worth compressing.
 */
class HeaderEncoder {
  private started = false;

  encode(headers: SpdyHeaders): Buffer {
    const block = encodeHeaderBlock(headers);
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      // CMF 0x78 (deflate, 32 KiB window); FLG with FDICT set and FCHECK making CMF·256+FLG divisible by 31.
      const flg = 0x20 | (31 - ((0x78 * 256 + 0x20) % 31));
      parts.push(Buffer.from([0x78, flg]), u32(adler32(spdyDictionary)));
    }
    const stored = (piece: Buffer) => {
      const head = Buffer.alloc(5);
      head[0] = 0; // BFINAL 0, BTYPE 00 (stored), padding to the byte
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(head, piece);
    };
    for (let at = 0; at < block.length; at += 0xffff) stored(block.subarray(at, at + 0xffff));
    stored(Buffer.alloc(0));
    return Buffer.concat(parts);
  }
}

/** The receiving half: one inflater for the connection's whole header stream. */
class HeaderDecoder {
  private readonly inflate: Inflate = createInflate({ dictionary: spdyDictionary });
  private failure: Error | undefined;

  constructor() {
    this.inflate.on('error', (err: Error) => (this.failure = err));
  }

  decode(compressed: Buffer): Promise<SpdyHeaders> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (d: Buffer) => {
        size += d.length;
        if (size <= maxHeaderBytes) chunks.push(d);
      };
      const onError = (err: Error) => {
        this.inflate.off('data', onData);
        reject(err);
      };
      this.inflate.on('data', onData);
      this.inflate.once('error', onError);
      this.inflate.write(compressed);
      this.inflate.flush(zlibConstants.Z_SYNC_FLUSH, () => {
        this.inflate.off('data', onData);
        this.inflate.off('error', onError);
        if (this.failure) return reject(this.failure);
        if (size > maxHeaderBytes) return reject(new Error(`header block decompresses to more than ${maxHeaderBytes} bytes`));
        try {
          resolve(decodeHeaderBlock(Buffer.concat(chunks)));
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  }

  close(): void {
    this.inflate.destroy();
  }
}

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | 3);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(payload.length, 4);
  head[4] = flags;
  return Buffer.concat([head, payload]);
}

function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff);
  head.writeUInt32BE(data.length, 4);
  head[4] = flags;
  return Buffer.concat([head, data]);
}

/** One client-opened stream. Writing sends DATA; ending sends FIN; reading yields the client's DATA. */
export class SpdyStream extends Duplex {
  constructor(
    readonly id: number,
    readonly headers: SpdyHeaders,
    private readonly session: SpdySession,
  ) {
    super({ allowHalfOpen: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Frames of at most 32 KiB keep one busy stream from starving the others.
    let at = 0;
    const next = (): void => {
      const piece = chunk.subarray(at, at + 32 * 1024);
      at += piece.length;
      this.session.send(dataFrame(this.id, 0, piece), at < chunk.length ? next : cb);
    };
    next();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.session.send(dataFrame(this.id, flagFin, Buffer.alloc(0)), cb);
  }

  override _read(): void {
    this.session.wantMore();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.session.forget(this.id, err !== null || !this.writableFinished || !this.readableEnded);
    cb(err);
  }
}

/**
 * One upgraded connection. Emits `stream` (SpdyStream) for each SYN_STREAM
 * after replying to it, and `close` when the connection is gone.
 */
export class SpdySession extends EventEmitter {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly encoder = new HeaderEncoder();
  private readonly decoder = new HeaderDecoder();
  private input: Buffer = Buffer.alloc(0);
  private pumping = false;
  private lastStreamId = 0;
  private closed = false;

  constructor(private readonly socket: Socket) {
    super();
    socket.on('data', (d: Buffer) => {
      this.input = this.input.length === 0 ? d : Buffer.concat([this.input, d]);
      if (this.input.length > maxPendingInput) socket.pause();
      void this.pump();
    });
    socket.on('close', () => this.teardown());
    socket.on('error', () => this.teardown());
    // The client ended the connection (it closed it, or died): the server's side ends too. A
    // socket taken over from an HTTP upgrade is half-open (the HTTP server's allowHalfOpen): left
    // alone it stayed in CLOSE_WAIT for good, and the streaming server's stop waited on it.
    socket.on('end', () => {
      this.teardown();
      socket.end();
    });
  }

  /** Writes raw frame bytes; `cb` runs once the socket took them. */
  send(frame: Buffer, cb?: () => void): void {
    if (this.closed || this.socket.destroyed) return void cb?.();
    this.socket.write(frame, () => cb?.());
  }

  /** A stream's reader wants data again: resume reading if we had paused. */
  wantMore(): void {
    if (this.input.length <= maxPendingInput) this.socket.resume();
  }

  /** A stream is done with; an abrupt end tells the client with RST_STREAM. */
  forget(id: number, reset: boolean): void {
    if (this.streams.delete(id) && reset) this.send(controlFrame(frameType.rstStream, 0, Buffer.concat([u32(id), u32(rstStatus.cancel)])));
  }

  /** Ends the connection politely: GOAWAY, then closing the socket once written. */
  close(): void {
    if (this.closed) return;
    const payload = Buffer.concat([u32(this.lastStreamId), u32(0)]);
    this.socket.end(controlFrame(frameType.goAway, 0, payload));
    this.teardown();
  }

  /** Ends the connection at once (protocol error, idle timeout). */
  destroy(reason: string): void {
    if (this.closed) return;
    this.emit('protocolError', reason);
    this.socket.destroy();
    this.teardown();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.decoder.close();
    for (const s of this.streams.values()) s.destroy();
    this.streams.clear();
    this.emit('close');
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.input.length >= 8) {
        const length = this.input.readUInt32BE(4) & 0xffffff;
        if (length > maxFrameBytes) return this.destroy(`frame of ${length} bytes (at most ${maxFrameBytes})`);
        if (this.input.length < 8 + length) break;
        const frame = this.input.subarray(0, 8 + length);
        this.input = this.input.subarray(8 + length);
        await this.handle(frame);
      }
      if (this.input.length <= maxPendingInput) this.socket.resume();
    } catch (err) {
      this.destroy((err as Error).message);
    } finally {
      this.pumping = false;
    }
  }

  private async handle(frame: Buffer): Promise<void> {
    const flags = frame[4]!;
    const payload = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) return this.onData(frame.readUInt32BE(0) & 0x7fffffff, flags, payload);
    const version = frame.readUInt16BE(0) & 0x7fff;
    if (version !== 3) throw new Error(`SPDY version ${version} (only 3 is spoken)`);
    const type = frame.readUInt16BE(2);
    switch (type) {
      case frameType.synStream: {
        if (payload.length < 10) throw new Error('SYN_STREAM is too short');
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = await this.decoder.decode(payload.subarray(10));
        return this.onSynStream(id, flags, headers);
      }
      case frameType.headers:
        // Decoded only to keep the shared decompression state in step.
        if (payload.length >= 4) await this.decoder.decode(payload.subarray(4));
        return;
      case frameType.rstStream: {
        const s = this.streams.get(payload.readUInt32BE(0) & 0x7fffffff);
        this.streams.delete(s?.id ?? -1);
        s?.destroy();
        return;
      }
      case frameType.ping:
        // Client pings carry odd ids; answer them with the same frame.
        if (payload.length === 4 && (payload.readUInt32BE(0) & 1) === 1) this.send(frame);
        return;
      case frameType.goAway:
        for (const s of this.streams.values()) s.push(null);
        return;
      default:
        // SETTINGS, WINDOW_UPDATE, SYN_REPLY (servers open no streams) and unknown types.
        return;
    }
  }

  private onSynStream(id: number, flags: number, headers: SpdyHeaders): void {
    if (id % 2 === 0 || id <= this.lastStreamId) {
      this.send(controlFrame(frameType.rstStream, 0, Buffer.concat([u32(id), u32(rstStatus.protocolError)])));
      return;
    }
    this.lastStreamId = id;
    const stream = new SpdyStream(id, headers, this);
    this.streams.set(id, stream);
    // The client waits for the reply before it sends data, and drops data on a stream not yet replied to.
    this.send(controlFrame(frameType.synReply, 0, Buffer.concat([u32(id), this.encoder.encode({})])));
    if (flags & flagFin) stream.push(null);
    this.emit('stream', stream);
  }

  private onData(id: number, flags: number, data: Buffer): void {
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.send(controlFrame(frameType.rstStream, 0, Buffer.concat([u32(id), u32(rstStatus.invalidStream)])));
      return;
    }
    if (data.length > 0) {
      if (!stream.push(data)) this.socket.pause();
      this.send(controlFrame(frameType.windowUpdate, 0, Buffer.concat([u32(id), u32(data.length)])));
    }
    if (flags & flagFin) stream.push(null);
  }
}
