import type { Database } from '@berth/db';
import type { storeV1 } from '@berth/proto';
import type { Handlers } from '@berth/rpc';

export interface StoreHandlerDeps {
  db: Database;
  version: string;
  stateDir: string;
}

/** The transport adapter of the store's internal API: validate, call, convert. */
export function createStoreHandlers(deps: StoreHandlerDeps): Handlers<typeof storeV1.StoreService> {
  return {
    info: async () => ({
      version: deps.version,
      pid: process.pid,
      databaseDialect: deps.db.dialect,
      appliedMigrations: deps.db.appliedMigrations,
      stateDir: deps.stateDir,
    }),
  };
}
