import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Server } from '@grpc/grpc-js';
import { openDatabase } from '@berth/db';
import { createLogger } from '@berth/observability';
import { storeV1 } from '@berth/proto';
import { bindUnixSocket, buildService } from '@berth/rpc';
import { RemoteStore } from '@berth/store-api';
import { storeTestSuite } from '@berth/store-api/testsuite';
import { createStoreHandlers } from './grpc-adapter.js';
import { LocalStore } from './local-store.js';

async function openLocal(): Promise<{ store: LocalStore; dir: string; close(): Promise<void>; db: Awaited<ReturnType<typeof openDatabase>> }> {
  const dir = mkdtempSync('/var/tmp/berth-store-test-');
  const db = await openDatabase(`file:${join(dir, 'berth.db')}`);
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
