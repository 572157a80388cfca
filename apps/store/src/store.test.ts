import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freshPostgresDatabase, postgresTestUrl } from '@berth/testing';
import { isCategory } from '@berth/errors';
import { sha256Digest } from '@berth/spec';
import { Server } from '@grpc/grpc-js';
import { openDatabase } from '@berth/db';
import { createLogger } from '@berth/observability';
import { storeV1 } from '@berth/proto';
import { bindUnixSocket, buildService } from '@berth/rpc';
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

storeTestSuite('remote over gRPC', async () => {
  const local = await openLocal();
  const server = new Server();
  const logger = createLogger({ service: 'test', level: 'silent' });
  const { definition, implementation } = buildService(storeV1.StoreService, createStoreHandlers({ store: local.store, db: local.db, version: 'test', stateDir: local.dir }), { logger, service: 'store' });
  server.addService(definition, implementation);
  const socket = join(local.dir, 'store.sock');
  await bindUnixSocket(server, socket);
  const remote = new RemoteStore(`unix://${socket}`);
  return {
    store: remote,
    async cleanup() {
      await remote.close();
      server.forceShutdown();
      await local.close();
    },
  };
});

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

test('a full disk fails the ingest clearly and leaves no partial data', async () => {
  const dir = mkdtempSync('/var/tmp/berth-full-');
  const state = join(dir, 'state');
  execFileSync('mkdir', [state]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', state]);
  const db = await openDatabase(`file:${join(dir, 'berth.db')}`);
  try {
    const { store } = await LocalStore.open({ db: db.prisma, stateDir: state });
    const data = Buffer.alloc(3 * 1024 * 1024, 1);
    const w = await store.content.writer({ ref: 'too-big', expectedDigest: sha256Digest(data), expectedSize: data.length });
    await assert.rejects(w.write(data), (e: Error) => isCategory(e, 'resource-exhausted') && /no space left/.test(e.message));
    assert.deepEqual(await store.content.listIngests(), []);
    assert.deepEqual(readdirSync(join(state, 'content/ingest')), [], 'the partial data is removed');
    await assert.rejects(store.content.info(sha256Digest(data)), (e: Error) => isCategory(e, 'not-found'));
    await store.close();
  } finally {
    await db.close();
    execFileSync('umount', [state]);
    rmSync(dir, { recursive: true, force: true });
  }
});
