import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freshPostgresDatabase, postgresTestUrl } from '@berth/testing';
import { isCategory } from '@berth/errors';
import { sha256Digest } from '@berth/spec';
import { openDatabase } from '@berth/db';
import { createLogger } from '@berth/observability';
import { storeV1 } from '@berth/proto';
import { bindUnixSocket, buildService, createClient, createGrpcServer } from '@berth/rpc';
import { RemoteStore } from '@berth/store-api';
import { storeTestSuite } from '@berth/store-api/testsuite';
import { createStoreHandlers } from './grpc-adapter.js';
import { LocalStore } from './local-store.js';

async function openLocal(databaseUrl?: string): Promise<{ store: LocalStore; dir: string; close(): Promise<void>; db: Awaited<ReturnType<typeof openDatabase>> }> {
  const dir = mkdtempSync('/var/tmp/berth-store-test-');
  const db = await openDatabase(databaseUrl ?? `file:${join(dir, 'berth.db')}`);
  const { store } = await LocalStore.open({ db: db.prisma, stateDir: dir, usageCacheMs: 0 });
  return {
    store,
    dir,
    db,
    async close() {
      await store.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storeTestSuite('local', async () => {
  const local = await openLocal();
  return { store: local.store, cleanup: () => local.close() };
});

/** Serves `local` on a unix socket and connects a RemoteStore to it. */
async function serveRemote(local: Awaited<ReturnType<typeof openLocal>>, localWrites: boolean): Promise<{ remote: RemoteStore; stop: () => Promise<void> }> {
  const server = createGrpcServer();
  const logger = createLogger({ service: 'test', level: 'silent' });
  const { definition, implementation } = buildService(storeV1.StoreService, createStoreHandlers({ store: local.store, db: local.db, version: 'test', stateDir: local.dir }), { logger, service: 'store' });
  server.addService(definition, implementation);
  const socket = join(local.dir, 'store.sock');
  await bindUnixSocket(server, socket);
  const remote = new RemoteStore(`unix://${socket}`, { localWrites });
  return {
    remote,
    async stop() {
      await remote.close();
      server.forceShutdown();
    },
  };
}

for (const localWrites of [true, false]) {
  storeTestSuite(`remote over gRPC (${localWrites ? 'local writes' : 'bytes streamed'})`, async () => {
    const local = await openLocal();
    const { remote, stop } = await serveRemote(local, localWrites);
    return {
      store: remote,
      async cleanup() {
        await stop();
        await local.close();
      },
    };
  });
}

/** The same suite with the metadata in PostgreSQL (required in CI). */
const postgresAdmin = postgresTestUrl();
if (postgresAdmin !== undefined) {
  storeTestSuite('local on PostgreSQL', async () => {
    const database = await freshPostgresDatabase(postgresAdmin, 'berth_store_test');
    const local = await openLocal(database.url);
    return {
      store: local.store,
      async cleanup() {
        await local.close();
        await database.drop();
      },
    };
  });
}

for (const via of ['local', 'remote with local writes'] as const) {
  test(`a full disk fails the ingest clearly and leaves no partial data (${via})`, async () => {
    const dir = mkdtempSync('/var/tmp/berth-full-');
    const state = join(dir, 'state');
    execFileSync('mkdir', [state]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', state]);
    const db = await openDatabase(`file:${join(dir, 'berth.db')}`);
    try {
      const { store: local } = await LocalStore.open({ db: db.prisma, stateDir: state });
      const served = via === 'local' ? undefined : await serveRemote({ store: local, db, dir, close: async () => undefined }, true);
      const store = served?.remote ?? local;
      const data = Buffer.alloc(3 * 1024 * 1024, 1);
      const w = await store.content.writer({ ref: 'too-big', expectedDigest: sha256Digest(data), expectedSize: data.length });
      await assert.rejects(w.write(data), (e: Error) => isCategory(e, 'resource-exhausted') && /no space left/.test(e.message));
      assert.deepEqual(await store.content.listIngests(), []);
      assert.deepEqual(readdirSync(join(state, 'content/ingest')), [], 'the partial data is removed');
      await assert.rejects(store.content.info(sha256Digest(data)), (e: Error) => isCategory(e, 'not-found'));
      await served?.stop();
      await local.close();
    } finally {
      await db.close();
      execFileSync('umount', [state]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('local writes over the wire: the client fills the data file, the store hashes what it reports and refuses a claim past the end', async () => {
  const local = await openLocal();
  const { remote, stop } = await serveRemote(local, true);
  const client = createClient(storeV1.StoreService, `unix://${join(local.dir, 'store.sock')}`);
  try {
    const data = Buffer.from('written straight into the store\n');
    const open = (ref: string) => ({ open: { ref, expectedDigest: sha256Digest(data), expectedSize: BigInt(data.length), labels: {}, leaseId: '', local: true } });

    const good = client.ingest();
    await good.send(open('local-good'));
    const opened = await good.next();
    assert.ok(opened?.localPath.startsWith(local.dir), `the store hands out its data file: ${opened?.localPath}`);
    writeFileSync(opened!.localPath, data);
    await good.send({ written: { offset: BigInt(data.length) } });
    await good.send({ commit: { labels: {} } });
    good.end();
    assert.equal((await good.next())?.committed?.digest, sha256Digest(data));
    const back: Uint8Array[] = [];
    for await (const chunk of remote.content.read(sha256Digest(data))) back.push(chunk);
    assert.equal(Buffer.concat(back).toString(), data.toString());
    await remote.content.delete(sha256Digest(data));

    const lying = client.ingest();
    await lying.send(open('local-lying'));
    const path = (await lying.next())!.localPath;
    writeFileSync(path, data.subarray(0, 10));
    await lying.send({ written: { offset: 20n } });
    await assert.rejects(lying.next(), (e: Error) => isCategory(e, 'failed-precondition') && /past the data file's end/.test(e.message));
    assert.deepEqual(await remote.content.listIngests(), [], 'the refused ingest is discarded');
    await assert.rejects(remote.content.info(sha256Digest(data)), (e: Error) => isCategory(e, 'not-found'));
  } finally {
    client.close();
    await stop();
    await local.close();
  }
});
