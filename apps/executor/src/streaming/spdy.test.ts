// The SPDY/3.1 server framing against a client built here from the draft's
// frame layouts, with real zlib compression (as Go's framer does it), so the
// session's own encoder and decoder are not checked against themselves.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { SpdySession, spdyDictionary, type SpdyStream } from './spdy.js';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function control(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.from([0x80, 3, 0, type, flags, 0, 0, 0]);
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

function data(id: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(id);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

function headerBlock(headers: Record<string, string>): Buffer {
  const parts = [u32(Object.keys(headers).length)];
  for (const [k, v] of Object.entries(headers)) parts.push(u32(k.length), Buffer.from(k), u32(v.length), Buffer.from(v));
  return Buffer.concat(parts);
}

/** A minimal SPDY client: compresses its header blocks with one zlib stream and the dictionary, and parses what comes back. */
class Client {
  private readonly deflate: Deflate = createDeflate({ dictionary: spdyDictionary });
  private readonly inflate: Inflate = createInflate({ dictionary: spdyDictionary });
  private buffered = Buffer.alloc(0);
  readonly frames: { control: boolean; type: number; id: number; flags: number; payload: Buffer }[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      while (this.buffered.length >= 8) {
        const length = this.buffered.readUIntBE(5, 3);
        if (this.buffered.length < 8 + length) break;
        const f = this.buffered.subarray(0, 8 + length);
        this.buffered = this.buffered.subarray(8 + length);
        const isControl = (f[0]! & 0x80) !== 0;
        this.frames.push({ control: isControl, type: isControl ? f.readUInt16BE(2) : 0, id: isControl ? (length >= 4 ? f.readUInt32BE(8) & 0x7fffffff : 0) : f.readUInt32BE(0), flags: f[4]!, payload: f.subarray(8) });
      }
    });
  }

  compress(headers: Record<string, string>): Promise<Buffer> {
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const onData = (d: Buffer) => out.push(d);
      this.deflate.on('data', onData);
      this.deflate.write(headerBlock(headers));
      this.deflate.flush(constants.Z_SYNC_FLUSH, () => {
        this.deflate.off('data', onData);
        resolve(Buffer.concat(out));
      });
    });
  }

  decompress(block: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const onData = (d: Buffer) => out.push(d);
      this.inflate.on('data', onData);
      this.inflate.write(block);
      this.inflate.flush(constants.Z_SYNC_FLUSH, () => {
        this.inflate.off('data', onData);
        resolve(Buffer.concat(out));
      });
    });
  }

  async synStream(id: number, headers: Record<string, string>, flags = 0): Promise<void> {
    const payload = Buffer.concat([u32(id), u32(0), Buffer.from([0, 0]), await this.compress(headers)]);
    this.socket.write(control(1, flags, payload));
  }

  async waitFor(pred: (f: Client['frames'][number]) => boolean): Promise<Client['frames'][number]> {
    for (let i = 0; i < 200; i++) {
      const f = this.frames.find(pred);
      if (f) return f;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('frame never came');
  }
}

let server: ReturnType<typeof createServer>;
let port = 0;
const sessions: SpdySession[] = [];

before(async () => {
  server = createServer((socket) => sessions.push(new SpdySession(socket)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
});
after(() => server.close());

async function pair(): Promise<{ client: Client; session: SpdySession }> {
  const before = sessions.length;
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  while (sessions.length === before) await new Promise((r) => setTimeout(r, 2));
  return { client: new Client(socket), session: sessions.at(-1)! };
}

describe('SPDY/3.1 session', () => {
  test('the header dictionary is the draft-3 one (its Adler-32 is what a compressor names)', () => {
    assert.equal(spdyDictionary.length, 1423);
    const dictId = createDeflate({ dictionary: spdyDictionary });
    const first = new Promise<Buffer>((r) => dictId.once('data', r));
    dictId.end('x');
    return first.then((b) => assert.equal(b.subarray(2, 6).toString('hex'), 'e3c6a7c2'));
  });

  test('opens client streams with a reply, carries data both ways and FIN', async () => {
    const { client, session } = await pair();
    const streams: SpdyStream[] = [];
    session.on('stream', (s: SpdyStream) => streams.push(s));
    await client.synStream(1, { streamtype: 'error' });
    await client.synStream(3, { streamtype: 'stdin', extra: 'a\0b' });
    const reply = await client.waitFor((f) => f.control && f.type === 2 && f.id === 3);
    // The reply's header block inflates with the client's own zlib stream to zero headers.
    await client.waitFor((f) => f.control && f.type === 2 && f.id === 1);
    const firstReply = client.frames.find((f) => f.control && f.type === 2 && f.id === 1)!;
    assert.deepEqual(await client.decompress(firstReply.payload.subarray(4)), u32(0));
    // Each header block ends at a sync-flush point, so an inflater stops there instead of reading on.
    assert.deepEqual(firstReply.payload.subarray(-5), Buffer.from([0, 0, 0, 0xff, 0xff]));
    assert.deepEqual(await client.decompress(reply.payload.subarray(4)), u32(0));
    assert.deepEqual(
      streams.map((s) => [s.id, s.headers['streamtype']]),
      [
        [1, 'error'],
        [3, 'stdin'],
      ],
    );
    assert.equal(streams[1]!.headers['extra'], 'a\0b');

    const received: Buffer[] = [];
    streams[1]!.on('data', (d: Buffer) => received.push(d));
    const ended = once(streams[1]!, 'end');
    client.socket.write(data(3, 0, Buffer.from('hello ')));
    client.socket.write(data(3, 1, Buffer.from('world')));
    await ended;
    assert.equal(Buffer.concat(received).toString(), 'hello world');
    // What it received is acknowledged with WINDOW_UPDATE.
    await client.waitFor((f) => f.control && f.type === 9 && f.id === 3);

    streams[0]!.end('status');
    const fin = await client.waitFor((f) => !f.control && f.id === 1 && (f.flags & 1) === 1);
    const bytes = Buffer.concat(client.frames.filter((f) => !f.control && f.id === 1).map((f) => f.payload));
    assert.equal(bytes.toString(), 'status');
    assert.equal(fin.payload.length, 0);
    session.close();
    const goAway = await client.waitFor((f) => f.control && f.type === 7);
    assert.equal(goAway.payload.readUInt32BE(0), 3, 'GOAWAY names the last stream opened');
  });

  test('reads what kubectl 1.20 sends for `exec -i … cat` (recorded frames: four SYN_STREAMs, stdin data, FIN)', async () => {
    // Recorded after the upgrade, from kubectl (client-go over spdystream, Go's zlib with the SPDY dictionary).
    const recorded = [
      '80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff',
      '800300010000001700000003000000000000c22e555c92929907000000ffff',
      '800300010000001900000005000000000000c22ac5565c92925f5a02000000ffff',
      '800300010000001500000007000000000000c229975a5404000000ffff',
      '000000030000000368690a',
      '0000000301000000',
    ];
    const { client, session } = await pair();
    const streams: SpdyStream[] = [];
    session.on('stream', (st: SpdyStream) => streams.push(st));
    client.socket.write(Buffer.from(recorded.join(''), 'hex'));
    await client.waitFor((f) => f.control && f.type === 2 && f.id === 7);
    assert.deepEqual(
      streams.map((st) => [st.id, st.headers['streamtype']]),
      [
        [1, 'error'],
        [3, 'stdin'],
        [5, 'stdout'],
        [7, 'stderr'],
      ],
    );
    const stdin: Buffer[] = [];
    streams[1]!.on('data', (d: Buffer) => stdin.push(d));
    await once(streams[1]!, 'end');
    assert.equal(Buffer.concat(stdin).toString(), 'hi\n');
    session.close();
  });

  test('answers client pings and refuses data for unknown streams', async () => {
    const { client, session } = await pair();
    client.socket.write(control(6, 0, u32(7)));
    await client.waitFor((f) => f.control && f.type === 6 && f.payload.readUInt32BE(0) === 7);
    client.socket.write(data(9, 0, Buffer.from('x')));
    const rst = await client.waitFor((f) => f.control && f.type === 3);
    assert.equal(rst.payload.readUInt32BE(0), 9);
    assert.equal(rst.payload.readUInt32BE(4), 2, 'INVALID_STREAM');
    session.close();
  });

  test('a client ending the connection ends the server side too, on a half-open socket as an HTTP upgrade hands over', async () => {
    const accepted: Socket[] = [];
    const halfOpen = createServer({ allowHalfOpen: true }, (socket) => {
      accepted.push(socket);
      sessions.push(new SpdySession(socket));
    });
    halfOpen.listen(0, '127.0.0.1');
    await once(halfOpen, 'listening');
    const before = sessions.length;
    const socket = connect((halfOpen.address() as { port: number }).port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      while (sessions.length === before) await new Promise((r) => setTimeout(r, 2));
      const client = new Client(socket);
      const session = sessions.at(-1)!;
      const streams: SpdyStream[] = [];
      session.on('stream', (s: SpdyStream) => streams.push(s));
      await client.synStream(1, { streamtype: 'stdout' });
      await client.waitFor((f) => f.control && f.type === 2 && f.id === 1);
      const gone = once(session, 'close');
      const serverEnded = once(socket, 'end').then(() => true);
      socket.end();
      await gone;
      assert.ok(streams[0]!.destroyed, 'the open stream goes with the connection');
      assert.ok(await Promise.race([serverEnded, new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]), 'the server ends its side of the connection');
    } finally {
      socket.destroy();
      for (const s of accepted) s.destroy();
      halfOpen.close();
    }
  });

  test('ends the connection on a frame too large, a foreign version or a header bomb', async () => {
    for (const bad of [
      async () => control(1, 0, Buffer.alloc(2 << 20)),
      async () => Buffer.from([0x80, 2, 0, 1, 0, 0, 0, 10, ...Buffer.alloc(10)]),
      async (c: Client) => Buffer.concat([control(1, 0, Buffer.concat([u32(1), u32(0), Buffer.from([0, 0]), await c.compress({ big: 'a'.repeat(100_000) })]))]),
    ]) {
      const { client, session } = await pair();
      const gone = once(session, 'close');
      const errors: string[] = [];
      session.on('protocolError', (reason: string) => errors.push(reason));
      client.socket.on('error', () => undefined);
      client.socket.write(await bad(client));
      await gone;
      assert.equal(errors.length, 1, 'the reason is reported');
    }
  });
});
