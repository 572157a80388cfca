export { openDatabase } from './database.js';
export type { Database, Db } from './database.js';
export { listMigrations, migratePostgres, migrateSqlite } from './migrate.js';
export type { Migration } from './migrate.js';
export { dialectOf, sqlitePath } from './url.js';
export type { Dialect } from './url.js';
