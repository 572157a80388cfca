import pg from 'pg';

/**
 * The PostgreSQL server tests may use: POSTGRES_TEST_URL names it, with a
 * user that may create databases (scripts/test sets it up). CI must have it,
 * so a run with CI=true and no server is an error, never a silent skip.
 */
export function postgresTestUrl(): string | undefined {
  const url = process.env['POSTGRES_TEST_URL'];
  if (url === undefined && process.env['CI'] === 'true') throw new Error('CI must set POSTGRES_TEST_URL');
  return url;
}

/** Creates an empty database for one test suite; `drop` removes it. */
export async function freshPostgresDatabase(adminUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now()}`.replace(/[^a-z0-9_]/g, '_');
  const run = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
