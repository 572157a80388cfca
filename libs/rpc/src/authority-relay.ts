import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { AuthorityRewriter } from '@berth/native';
import { ClientFrames } from './client-frames.js';

/**
 * Lets clients whose `:authority` Node's HTTP/2 server refuses reach a
 * grpc-js server on a unix socket.
 *
 * gRPC-Go, as the kubelet up to 1.30 and crictl up to 1.30 build it, sends the
 * socket path (`/run/berth/berth.sock`) as `:authority`; nghttp2 resets every
 * such stream with PROTOCOL_ERROR before grpc-js sees it, and Node has no
 * switch for that check. Each accepted connection is therefore routed:
 *
 * 1. The relay speaks first, with an empty SETTINGS frame (every gRPC client
 *    waits for the server's SETTINGS before its first request), and reads the
 *    client's preface and frames up to its first header block, decoding it
 *    with an {@link AuthorityRewriter}.
 * 2. If that block's authority is one nghttp2 accepts (grpc-js and the kubelet
 *    1.31+ send `localhost`), the client's SETTINGS acknowledgement of the
 *    relay's frame is taken out, the bytes read are put back, and the socket
 *    itself goes to the server: from then on nothing stands in between.
 * 3. Otherwise the connection goes to the server through a relay that
 *    re-encodes each of the client's header blocks with the authority
 *    replaced by `localhost`; everything else passes byte for byte, and the
 *    server's bytes go to the client untouched.
 *
 * A client that sends no request within {@link decisionTimeoutMs}, or more
 * than {@link maxHeldBytes} before one, is relayed, which serves any client;
 * the direct route is only ever a shortcut.
 */

/** An empty SETTINGS frame: the relay's own opening, with every setting at its default. */
const OPENING_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
/** What replaces an authority nghttp2 refuses: what grpc-js and the kubelet 1.31+ send. */
const REPLACEMENT_AUTHORITY = 'localhost';
const decisionTimeoutMs = 2000;
/** What the listener holds while it has not chosen a route; a client that sends more is relayed at once. */
const maxHeldBytes = 1024 * 1024;

export interface ConnectionSink {
  injectConnection(connection: Duplex): void;
}

/** A connection the server reads through {@link ClientFrames}; its writes go to the client as they are. */
class RelayedConnection extends Duplex {
  constructor(
    private readonly socket: Socket,
    frames: ClientFrames,
    first: Buffer[],
  ) {
    super({ allowHalfOpen: false });
    if (first.length > 0) this.push(Buffer.concat(first));
    socket.on('data', (chunk: Buffer) => {
      let out: Buffer[];
      try {
        out = frames.push(chunk);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      if (out.length > 0 && !this.push(out.length === 1 ? out[0] : Buffer.concat(out))) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.resume();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

/** Routes one accepted connection to `sink`, directly or through the relay, as described above. */
export function routeConnection(socket: Socket, sink: ConnectionSink): void {
  const frames = new ClientFrames(new AuthorityRewriter(REPLACEMENT_AUTHORITY), { dropAck: true, keepOriginal: true });
  const rewritten: Buffer[] = [];
  let held = 0;
  let decided = false;
  const ignoreError = (): void => undefined;
  const finish = (direct: boolean): void => {
    decided = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', ignoreError);
    socket.pause();
    if (direct) {
      socket.unshift(Buffer.concat([...frames.stopKeepingOriginal(), frames.unparsed()]));
      sink.injectConnection(socket);
    } else {
      frames.stopKeepingOriginal();
      sink.injectConnection(new RelayedConnection(socket, frames, rewritten));
    }
  };
  const onData = (chunk: Buffer): void => {
    try {
      rewritten.push(...frames.push(chunk));
    } catch {
      socket.destroy();
      return;
    }
    held += chunk.length;
    if (frames.notHttp2) finish(true);
    else if (frames.replaced || held > maxHeldBytes) finish(false);
    else if (frames.blocks > 0 && frames.ackDropped) finish(true);
  };
  const timer = setTimeout(() => {
    if (!decided && !socket.destroyed) finish(false);
  }, decisionTimeoutMs);
  timer.unref();
  socket.on('error', ignoreError);
  socket.once('close', () => clearTimeout(timer));
  socket.on('data', onData);
  socket.write(OPENING_SETTINGS);
}
