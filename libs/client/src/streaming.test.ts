import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { portForwardConnection, streamExec, StreamingError } from './index.js';

// A streaming server for the tests: each test serves its own path.
type Handler = (ws: WebSocket, request: IncomingMessage) => void;
const handlers = new Map<string, Handler>();
// The first protocol offered, as a v5 server picks; under /v4/, a server that knows only v4.
const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered, request) => (request.url?.startsWith('/v4/') ? 'v4.channel.k8s.io' : ([...offered][0] ?? false)) });
let server: Server;
let base: string;
before(async () => {
  server = createServer();
  server.on('upgrade', (request, socket, head) => {
    const handler = handlers.get(new URL(request.url!, 'http://x').pathname);
    // An unknown path is a spent token: refused with a reason, as a streaming server does.
    if (handler === undefined) socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\nConnection: close\r\n\r\ntoken not found');
    else wss.handleUpgrade(request, socket, head, (ws) => handler(ws, request));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  wss.close();
  server.close();
});

const frame = (channel: number, data: string | number[] = []): Buffer => Buffer.concat([Buffer.of(channel), typeof data === 'string' ? Buffer.from(data) : Buffer.from(data)]);
const exitStatus = (code: number) => JSON.stringify({ metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: ${code}`, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(code) }] } });

function collect(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      chunks.push(chunk);
      callback();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

test('exec: output reaches the writables; stdin, resize and the v5 stdin close reach the server; the exit code comes from the status', async () => {
  const received: Buffer[] = [];
  handlers.set('/exec/a', (ws) => {
    assert.equal(ws.protocol, 'v5.channel.k8s.io');
    ws.send(frame(1)); // a channel announcement: no data
    ws.send(frame(1, 'out'));
    ws.send(frame(2, 'err'));
    ws.on('message', (data: Buffer) => {
      received.push(data);
      if (data[0] !== 255) return;
      ws.send(frame(3, exitStatus(3)));
      ws.close(1000);
    });
  });
  const stdout = collect();
  const stderr = collect();
  const session = streamExec(`${base}/exec/a`, { stdin: Readable.from([Buffer.from('hel'), Buffer.from('lo')]), stdout: stdout.stream, stderr: stderr.stream });
  session.resize(80, 24); // before the socket opens: sent once it does
  const result = await session.done;
  assert.equal(result.exitCode, 3);
  assert.equal(result.status.reason, 'NonZeroExitCode');
  assert.equal(stdout.text(), 'out');
  assert.equal(stderr.text(), 'err');
  assert.deepEqual(
    received.map((b) => [b[0], b.subarray(1).toString('latin1')]),
    [
      [4, '{"Width":80,"Height":24}'],
      [0, 'hel'],
      [0, 'lo'],
      [255, '\x00'],
    ],
  );
});

test('exec on v4: Success is exit code 0, closing stdin sends nothing, and a slow writable still gets every byte in order', async () => {
  const received: Buffer[] = [];
  handlers.set('/v4/exec/b', (ws) => {
    assert.equal(ws.protocol, 'v4.channel.k8s.io');
    ws.on('message', (data: Buffer) => {
      received.push(data);
      for (let i = 0; i < 50; i++) ws.send(frame(1, `${i},`));
      ws.send(frame(3, JSON.stringify({ metadata: {}, status: 'Success' })));
      ws.close(1000);
    });
  });
  const out: string[] = [];
  // Says stop after every few bytes: the session must pause the socket and resume on drain.
  const slow = new Writable({
    highWaterMark: 4,
    write: (chunk: Buffer, _encoding, callback) => {
      out.push(chunk.toString());
      setImmediate(callback);
    },
  });
  const session = streamExec(`${base}/v4/exec/b`, { stdout: slow });
  await session.write('x');
  session.closeStdin();
  const result = await session.done;
  assert.equal(result.exitCode, 0);
  assert.equal(out.join(''), Array.from({ length: 50 }, (_, i) => `${i},`).join(''));
  assert.deepEqual(received.map((b) => [...b]), [[0, 0x78]]);
});

test('exec: a failure other than an exit code rejects with its status; a refused token rejects with the reason', async () => {
  handlers.set('/exec/c', (ws) => {
    ws.send(frame(3, JSON.stringify({ metadata: {}, status: 'Failure', message: 'container is not running', reason: 'InternalError' })));
    ws.close(1000);
  });
  await assert.rejects(streamExec(`${base}/exec/c`).done, (err: StreamingError) => err instanceof StreamingError && err.message === 'container is not running' && err.status?.reason === 'InternalError');
  await assert.rejects(streamExec(`${base}/exec/spent`).done, /HTTP 404: token not found/);
});

test('exec: a stream that ends without a status rejects', async () => {
  handlers.set('/exec/d', (ws) => ws.close(1000));
  await assert.rejects(streamExec(`${base}/exec/d`).done, /without the command's status/);
});

test('port-forward: bytes round-trip after the port preamble, and reading ends when the server closes', async () => {
  handlers.set('/portforward/a', (ws, request) => {
    assert.equal(new URL(request.url!, 'http://x').searchParams.get('ports'), '8080');
    assert.equal(ws.protocol, 'v4.channel.k8s.io');
    ws.send(frame(0, [0x90, 0x1f])); // 8080, little-endian
    ws.send(frame(1, [0x90, 0x1f]));
    ws.on('message', (data: Buffer) => {
      assert.equal(data[0], 0);
      ws.send(frame(0, data.subarray(1).toString().toUpperCase()));
      ws.close(1000);
    });
  });
  const connection = portForwardConnection(`${base}/portforward/a`, 8080);
  connection.write('ping');
  const chunks: Buffer[] = [];
  for await (const chunk of connection) chunks.push(chunk as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'PING');
  connection.destroy();
});

test('port-forward: the error channel text becomes the stream error', async () => {
  handlers.set('/portforward/b', (ws) => {
    ws.send(frame(0, [0x50, 0x00])); // 80
    ws.send(frame(1, [0x50, 0x00]));
    ws.send(frame(1, 'dial tcp 127.0.0.1:80: connect: connection refused'));
    ws.close(1000);
  });
  const [err] = (await once(portForwardConnection(`${base}/portforward/b`, 80), 'error')) as [Error];
  assert.equal(err.message, 'dial tcp 127.0.0.1:80: connect: connection refused');
});

test('port-forward: a channel opened for another port is an error', async () => {
  handlers.set('/portforward/c', (ws) => ws.send(frame(0, [0x51, 0x00])));
  const [err] = (await once(portForwardConnection(`${base}/portforward/c`, 80), 'error')) as [Error];
  assert.match(err.message, /another port than 80/);
});
