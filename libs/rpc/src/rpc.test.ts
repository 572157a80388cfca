import { strict as assert } from 'node:assert';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Client, credentials, Server } from '@grpc/grpc-js';
import { isCategory, NotFoundError } from '@berth/errors';
import { createLogger } from '@berth/observability';
import { storeV1 } from '@berth/proto';
import { bindUnixSocket, buildService, claimSocketPath, createClient, encodeOnce } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-rpc-'));
const logger = createLogger({ service: 'test', level: 'silent' });
const servers: Server[] = [];
after(() => servers.forEach((s) => s.forceShutdown()));

async function serve(handlers: Parameters<typeof buildService<typeof storeV1.StoreService>>[1], name: string): Promise<string> {
  const server = new Server();
  servers.push(server);
  const { definition, implementation } = buildService(storeV1.StoreService, handlers, { logger, service: 'test' });
  server.addService(definition, implementation);
  const path = join(dir, `${name}.sock`);
  await bindUnixSocket(server, path, { mode: 0o660 });
  return path;
}

test('a handler answers; its errors arrive as their category', async () => {
  let fail = false;
  const path = await serve(
    {
      info: async () => {
        if (fail) throw new NotFoundError('no such thing');
        return { version: '1.2.3', pid: process.pid, databaseDialect: 'sqlite', appliedMigrations: 1, stateDir: '/x' };
      },
    },
    'ok',
  );
  assert.equal(statSync(path).mode & 0o777, 0o660);
  const client = createClient(storeV1.StoreService, `unix://${path}`);
  try {
    assert.equal((await client.info({})).version, '1.2.3');
    fail = true;
    await assert.rejects(client.info({}), (err: Error) => isCategory(err, 'not-found') && /Info: no such thing/.test(err.message));
  } finally {
    client.close();
  }
});

test('a method without a handler is UNIMPLEMENTED; undecodable bytes are INVALID_ARGUMENT', async () => {
  const path = await serve({}, 'empty');
  const client = createClient(storeV1.StoreService, `unix://${path}`);
  await assert.rejects(client.info({}), (err: Error) => isCategory(err, 'unimplemented'));
  client.close();
  const raw = new Client(`unix://${path}`, credentials.createInsecure());
  const code = await new Promise<number | undefined>((resolve) => {
    // 0x0a 0xff: field 1, length-delimited, with a length running past the end.
    raw.makeUnaryRequest('/berth.store.v1.Store/Info', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff]), (err) => resolve(err?.code));
  });
  raw.close();
  assert.equal(code, 3);
});

test('a live socket is never taken over; a stale one is replaced; a non-socket is refused', async () => {
  const live = join(dir, 'live.sock');
  const other = createServer(() => {});
  await new Promise<void>((r) => other.listen(live, r));
  await assert.rejects(claimSocketPath(live), /another process is already serving/);
  await new Promise<void>((r) => other.close(() => r()));
  // closing a net server unlinks its socket; make a stale one by hand
  const stale = join(dir, 'stale.sock');
  const s2 = createServer(() => {});
  await new Promise<void>((r) => s2.listen(stale, r));
  const { execFileSync } = await import('node:child_process');
  execFileSync('cp', ['-a', stale, join(dir, 'copy.sock')]);
  await new Promise<void>((r) => s2.close(() => r()));
  await claimSocketPath(join(dir, 'copy.sock'));
  const file = join(dir, 'plain');
  writeFileSync(file, 'x');
  await assert.rejects(claimSocketPath(file), /is not a socket/);
});

test('a reply marked encodeOnce is encoded once however often it is sent; others each time', async () => {
  let encoded = 0;
  const counting = {
    ...storeV1.StoreService,
    info: {
      ...storeV1.StoreService.info,
      responseSerialize: (value: storeV1.InfoResponse) => {
        encoded += 1;
        return storeV1.StoreService.info.responseSerialize(value);
      },
    },
  };
  const kept = encodeOnce({ version: 'kept', pid: 1, databaseDialect: 'sqlite', appliedMigrations: 1, stateDir: '/x' });
  let reply: storeV1.InfoResponse = kept;
  const server = new Server();
  servers.push(server);
  const { definition, implementation } = buildService(counting, { info: async () => reply }, { logger, service: 'test' });
  server.addService(definition, implementation);
  const path = join(dir, 'once.sock');
  await bindUnixSocket(server, path, { mode: 0o660 });
  const client = createClient(storeV1.StoreService, `unix://${path}`);
  try {
    for (let i = 0; i < 3; i++) assert.equal((await client.info({})).version, 'kept');
    assert.equal(encoded, 1);
    reply = { ...kept, version: 'fresh' };
    for (let i = 0; i < 2; i++) assert.equal((await client.info({})).version, 'fresh');
    assert.equal(encoded, 3);
  } finally {
    client.close();
  }
});
