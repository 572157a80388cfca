// Composition root of berth-store: the service that owns Berth's disk
// (content, snapshots, image records, leases). Everything is wired here.
import { internalSocket } from '@berth/config';
import { runDaemon, serveGrpc } from '@berth/daemon';
import { openDatabase } from '@berth/db';
import { storeV1 } from '@berth/proto';
import { buildService } from '@berth/rpc';
import { createStoreHandlers } from './grpc-adapter.js';
import { LocalStore } from './local-store.js';

await runDaemon({
  service: 'store',
  async start(ctx) {
    const db = await openDatabase(ctx.config.database.url);
    ctx.onShutdown(() => db.close());
    ctx.logger.info({ dialect: db.dialect, migrations: db.appliedMigrations }, 'database ready');
    const { store, repaired } = await LocalStore.open({
      db: db.prisma,
      stateDir: ctx.config.stateDir,
      onBackgroundGc: (r) => (r instanceof Error ? ctx.logger.error({ err: r }, 'garbage collection failed') : ctx.logger.info(r, 'garbage collection done')),
    });
    ctx.onShutdown(() => store.close());
    if (Object.values(repaired).some((n) => n > 0)) ctx.logger.warn(repaired, 'repaired what an earlier crash left behind');
    store.startGcTimer(10 * 60 * 1000);
    store.scheduleGc();
    const handlers = createStoreHandlers({ store, db, version: ctx.version, stateDir: ctx.config.stateDir });
    await serveGrpc(ctx, internalSocket(ctx.config, 'store'), [buildService(storeV1.StoreService, handlers, { logger: ctx.logger, service: 'store' })]);
    return async () => {
      try {
        await db.prisma.$queryRawUnsafe('SELECT 1');
        return { database: { ok: true } };
      } catch (err) {
        return { database: { ok: false, message: err instanceof Error ? err.message : String(err) } };
      }
    };
  },
});
