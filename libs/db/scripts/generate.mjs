#!/usr/bin/env node
// Generates the two Prisma clients (SQLite and PostgreSQL) from the single
// schema in prisma/schema.prisma: the PostgreSQL copy differs only in its
// provider and output folder. The schema engine is not needed for generation,
// so it is pointed at /bin/true and nothing is downloaded.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const schema = readFileSync(join(root, 'prisma/schema.prisma'), 'utf8');
const pg = schema
  .replace('provider = "sqlite"', 'provider = "postgresql"')
  .replace('output       = "../src/generated/sqlite"', 'output       = "../../src/generated/postgresql"');
if (pg === schema || !pg.includes('generated/postgresql')) throw new Error('could not derive the PostgreSQL schema');
mkdirSync(join(root, 'prisma/.postgresql'), { recursive: true });
writeFileSync(join(root, 'prisma/.postgresql/schema.prisma'), pg);
const env = { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true', PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
for (const file of ['prisma/schema.prisma', 'prisma/.postgresql/schema.prisma']) {
  execFileSync(join(root, '../../node_modules/.bin/prisma'), ['generate', '--schema', file], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
}
