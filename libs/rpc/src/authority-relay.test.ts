// The CRI socket's routing for gRPC-Go clients. gRPC-Go, as the kubelet up to
// 1.30 and crictl build it, sends the socket path as `:authority`; Node's
// HTTP/2 server refuses that on its own. These tests send that authority from
// a client that is not grpc-js (Node's http2 client, and hand-made frames) and
// check that the calls are answered, that grpc-js clients keep the direct
// route, and that the server's other header checks still refuse what they did.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect, createServer, Socket, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Duplex } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { AuthorityRewriter } from '@berth/native';
import { createLogger } from '@berth/observability';
import { criV1 } from '@berth/proto';
import { routeConnection } from './authority-relay.js';
import { ClientFrames, ClientProtocolError } from './client-frames.js';
import { bindUnixSocket, buildService, createClient, createGrpcServer } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-authority-'));
const logger = createLogger({ service: 'test', level: 'silent' });
const cleanup: (() => void)[] = [];
after(() => cleanup.forEach((f) => f()));

function criServer(): Server {
  const server = createGrpcServer();
  const { definition, implementation } = buildService(
    criV1.RuntimeServiceService,
    {
      version: async () => ({ version: '0.1.0', runtimeName: 'berth', runtimeVersion: 'test', runtimeApiVersion: 'v1' }),
      getContainerEvents: async (_req: criV1.GetEventsRequest, send: (m: criV1.ContainerEventResponse) => Promise<void>) => {
        for (const id of ['c1', 'c2', 'c3']) {
          await send(criV1.ContainerEventResponse.fromPartial({ containerId: id, containerEventType: criV1.ContainerEventType.CONTAINER_STARTED_EVENT }));
        }
      },
    },
    { logger, service: 'test' },
  );
  server.addService(definition, implementation);
  cleanup.push(() => server.forceShutdown());
  return server;
}

async function serveRouted(name: string): Promise<string> {
  const path = join(dir, `${name}.sock`);
  const listener = await bindUnixSocket(criServer(), path, { acceptPathAuthority: true });
  cleanup.push(() => listener.close());
  return path;
}

/** A gRPC message frame: uncompressed flag, length, bytes. */
function grpcFrame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

function grpcMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return out;
}

/** One gRPC call over Node's own http2 client with the `:authority` gRPC-Go sends. */
async function call(session: ClientHttp2Session, authority: string, method: string, message: Uint8Array): Promise<{ status: string | undefined; messages: Buffer[] }> {
  const req = session.request({ ':method': 'POST', ':path': method, ':authority': authority, ':scheme': 'http', 'content-type': 'application/grpc', te: 'trailers' });
  const chunks: Buffer[] = [];
  let status: string | undefined;
  req.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
  req.on('data', (c: Buffer) => chunks.push(c));
  req.end(grpcFrame(message));
  await once(req, 'end');
  return { status, messages: grpcMessages(Buffer.concat(chunks)) };
}

function goStyleSession(path: string): ClientHttp2Session {
  const session = http2Connect('http://localhost', { createConnection: () => connect(path) });
  session.on('error', () => undefined);
  cleanup.push(() => session.destroy());
  return session;
}

describe('a client that sends the socket path as :authority', () => {
  test('gets answers to many unary calls on one connection and to a streaming call', async () => {
    const path = await serveRouted('go');
    const session = goStyleSession(path);
    const version = criV1.VersionRequest.encode({ version: 'v1' }).finish();
    // Many requests on one connection: the client's HPACK encoder indexes the
    // path-like authority once and names it by index from then on.
    for (let i = 0; i < 40; i++) {
      const r = await call(session, path, '/runtime.v1.RuntimeService/Version', version);
      assert.equal(r.status, '0', `call ${i}`);
      assert.equal(criV1.VersionResponse.decode(r.messages[0]!).runtimeName, 'berth');
    }
    const events = await call(session, path, '/runtime.v1.RuntimeService/GetContainerEvents', criV1.GetEventsRequest.encode({}).finish());
    assert.equal(events.status, '0');
    assert.deepEqual(
      events.messages.map((m) => criV1.ContainerEventResponse.decode(m).containerId),
      ['c1', 'c2', 'c3'],
    );
  });

  test('and a grpc-js client on the same socket both work', async () => {
    const path = await serveRouted('mixed');
    const grpcJs = createClient(criV1.RuntimeServiceService, `unix://${path}`);
    cleanup.push(() => grpcJs.close());
    const session = goStyleSession(path);
    const [a, b] = await Promise.all([grpcJs.version({ version: 'v1' }), call(session, path, '/runtime.v1.RuntimeService/Version', criV1.VersionRequest.encode({ version: 'v1' }).finish())]);
    assert.equal(a.runtimeName, 'berth');
    assert.equal(b.status, '0');
  });
});

describe('routing', () => {
  /** A listener that routes into `server` and records what each connection was handed over as. */
  async function recordingListener(name: string): Promise<{ path: string; handed: Duplex[] }> {
    const server = criServer();
    const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
    const handed: Duplex[] = [];
    const listener: NetServer = createServer((socket) =>
      routeConnection(socket, {
        injectConnection: (c) => {
          handed.push(c);
          injector.injectConnection(c);
        },
      }),
    );
    const path = join(dir, `${name}.sock`);
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    cleanup.push(() => listener.close());
    return { path, handed };
  }

  test('a grpc-js client (authority localhost) gets the socket itself; a path authority gets the relay', async () => {
    const { path, handed } = await recordingListener('record');
    const grpcJs = createClient(criV1.RuntimeServiceService, `unix://${path}`);
    cleanup.push(() => grpcJs.close());
    assert.equal((await grpcJs.version({ version: 'v1' })).runtimeName, 'berth');
    assert.equal(handed.length, 1);
    assert.ok(handed[0] instanceof Socket, 'the direct route hands over the accepted socket');
    const r = await call(goStyleSession(path), path, '/runtime.v1.RuntimeService/Version', criV1.VersionRequest.encode({ version: 'v1' }).finish());
    assert.equal(r.status, '0');
    assert.equal(handed.length, 2);
    assert.ok(!(handed[1] instanceof Socket), 'a path authority is served through the relay');
  });
});

// ---- hand-made frames, for what no well-behaved client library will send

/** A header block of literal fields without indexing and without Huffman coding (RFC 7541 §6.2.2). */
function literalBlock(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    assert.ok(name.length < 127 && value.length < 127);
    parts.push(Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
const SETTINGS_ACK = frame(4, 1, 0, Buffer.alloc(0));

function requestFields(authority: string, extra: [string, string][] = []): [string, string][] {
  return [[':method', 'POST'], [':scheme', 'http'], [':path', '/runtime.v1.RuntimeService/Version'], [':authority', authority], ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra];
}

/** Sends `frames` after the preface and reads frames until one of `stopTypes` arrives on stream 1. */
async function exchange(path: string, frames: Buffer[], stopTypes: number[]): Promise<{ type: number; payload: Buffer }> {
  const socket = connect(path);
  cleanup.push(() => socket.destroy());
  await once(socket, 'connect');
  // The request's message (an empty VersionRequest) ends the stream.
  socket.write(Buffer.concat([PREFACE, SETTINGS, SETTINGS_ACK, ...frames, frame(0, 1, 1, Buffer.alloc(5))]));
  let buf = Buffer.alloc(0);
  for await (const chunk of socket) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3);
      const type = buf[3]!;
      const flags = buf[4]!;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === 4 && (flags & 1) === 0) socket.write(SETTINGS_ACK);
      if ((stream === 1 && stopTypes.includes(type)) || type === 7) {
        socket.destroy();
        return { type, payload };
      }
    }
  }
  throw new Error('the connection closed first');
}

const HEADERS = 1;
const RST_STREAM = 3;
const END_HEADERS = 0x4;

describe('what the listener holds before it chooses', () => {
  test('a client that sends more than 1 MiB before its first request is relayed at once, not held', async () => {
    const server = criServer();
    const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
    const handed: Duplex[] = [];
    const listener = createServer((socket) => routeConnection(socket, { injectConnection: (c) => (handed.push(c), injector.injectConnection(c)) }));
    const path = join(dir, 'held.sock');
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    cleanup.push(() => listener.close());
    const socket = connect(path);
    cleanup.push(() => socket.destroy());
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    // Frames of an unknown type, which HTTP/2 receivers ignore: 80 of 16 KiB, no request among them.
    const filler = Array.from({ length: 80 }, () => frame(0xfa, 0, 0, Buffer.alloc(16_384)));
    socket.write(Buffer.concat([PREFACE, SETTINGS, SETTINGS_ACK, ...filler]));
    const started = Date.now();
    while (handed.length === 0 && Date.now() - started < 1500) await new Promise((r) => setTimeout(r, 10));
    assert.equal(handed.length, 1, 'handed over before the 2 s wait for a request');
    assert.ok(!(handed[0] instanceof Socket), 'through the relay');
  });
});

describe('the server keeps its other checks', () => {
  test('a request with a path authority is answered with response headers', async () => {
    const path = await serveRouted('raw-ok');
    const r = await exchange(path, [frame(HEADERS, END_HEADERS, 1, literalBlock(requestFields('/run/berth/berth.sock')))], [HEADERS, RST_STREAM]);
    assert.equal(r.type, HEADERS);
  });

  test('an upper-case header name is still refused with RST_STREAM(PROTOCOL_ERROR)', async () => {
    const path = await serveRouted('raw-bad');
    const r = await exchange(path, [frame(HEADERS, END_HEADERS, 1, literalBlock(requestFields('/run/berth/berth.sock', [['X-Bad', '1']])))], [HEADERS, RST_STREAM]);
    assert.equal(r.type, RST_STREAM);
    assert.equal(r.payload.readUInt32BE(0), 1, 'PROTOCOL_ERROR');
  });

  test('a second :authority in one request is still refused', async () => {
    const path = await serveRouted('raw-twice');
    const r = await exchange(path, [frame(HEADERS, END_HEADERS, 1, literalBlock(requestFields('/run/berth/berth.sock', [[':authority', 'localhost']])))], [HEADERS, RST_STREAM]);
    assert.equal(r.type, RST_STREAM);
  });
});

describe('ClientFrames', () => {
  const fields = requestFields('/run/x.sock');

  test('a padded, prioritised HEADERS split into CONTINUATIONs comes out whole; DATA and the second ACK pass as they are', () => {
    const block = literalBlock(fields);
    const padded = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 0, 16]), block.subarray(0, 20), Buffer.alloc(3)]);
    const data = frame(0, 1, 1, Buffer.from('hello'));
    const input = Buffer.concat([
      PREFACE,
      SETTINGS,
      SETTINGS_ACK,
      frame(HEADERS, 0x8 | 0x20, 1, padded),
      frame(9, 0, 1, block.subarray(20, 40)),
      frame(9, END_HEADERS, 1, block.subarray(40)),
      data,
      SETTINGS_ACK,
    ]);
    const frames = new ClientFrames(new AuthorityRewriter('localhost'), { dropAck: true, keepOriginal: false });
    const out: Buffer[] = [];
    for (const byte of input) out.push(...frames.push(Buffer.from([byte])));
    const bytes = Buffer.concat(out);
    assert.ok(bytes.subarray(0, PREFACE.length).equals(PREFACE));
    let at = PREFACE.length;
    const next = (): { type: number; flags: number; payload: Buffer } => {
      const len = bytes.readUIntBE(at, 3);
      const f = { type: bytes[at + 3]!, flags: bytes[at + 4]!, payload: bytes.subarray(at + 9, at + 9 + len) };
      at += 9 + len;
      return f;
    };
    assert.deepEqual(next(), { type: 4, flags: 0, payload: Buffer.alloc(0) }, 'the client SETTINGS passes');
    const headers = next();
    assert.equal(headers.type, HEADERS, 'the first ACK is dropped, the block follows');
    assert.equal(headers.flags, END_HEADERS | 0x20, 'one frame, END_HEADERS, priority kept, padding gone');
    assert.deepEqual([...headers.payload.subarray(0, 5)], [0, 0, 0, 0, 16]);
    assert.equal(frames.replaced, true);
    assert.ok(next().payload.equals(Buffer.from('hello')));
    assert.deepEqual(next(), { type: 4, flags: 1, payload: Buffer.alloc(0) }, 'a later ACK is the server’s own and passes');
    assert.equal(at, bytes.length);
  });

  test('a frame inside a header block, or a block that does not decode, is a protocol error', () => {
    const block = literalBlock(fields);
    const interrupted = Buffer.concat([PREFACE, frame(HEADERS, 0, 1, block.subarray(0, 10)), frame(0, 0, 1, Buffer.from('x'))]);
    assert.throws(() => new ClientFrames(new AuthorityRewriter('localhost'), { dropAck: false, keepOriginal: false }).push(interrupted), ClientProtocolError);
    const garbage = Buffer.concat([PREFACE, frame(HEADERS, END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))]);
    assert.throws(() => new ClientFrames(new AuthorityRewriter('localhost'), { dropAck: false, keepOriginal: false }).push(garbage), ClientProtocolError);
  });

  test('a block that decodes to far more than it weighs (indexed references to a large entry) is refused', () => {
    // One literal with incremental indexing of a 4000-byte value, then 200 one-byte references to it.
    // 4000 as an HPACK integer with a 7-bit prefix: 127, then 3873 in base 128 (33 + 30 * 128).
    const big = Buffer.concat([Buffer.from([0x40, 1]), Buffer.from('x'), Buffer.from([0x7f, 0x80 | 33, 30])]);
    const value = Buffer.alloc(4000, 0x61);
    const block = Buffer.concat([big, value, Buffer.alloc(200, 0xbe)]);
    const input = Buffer.concat([PREFACE, frame(HEADERS, END_HEADERS, 1, block)]);
    assert.throws(() => new ClientFrames(new AuthorityRewriter('localhost'), { dropAck: false, keepOriginal: false }).push(input), /too large/);
  });
});
