import { InvalidArgumentError } from '@berth/errors';

export type Dialect = 'sqlite' | 'postgresql';

/** The dialect of a database URL: `file:` for SQLite, `postgres(ql)://` for PostgreSQL. */
export function dialectOf(url: string): Dialect {
  if (url.startsWith('file:')) return 'sqlite';
  if (url.startsWith('postgresql://') || url.startsWith('postgres://')) return 'postgresql';
  throw new InvalidArgumentError('database.url must start with file: (SQLite) or postgresql:// (PostgreSQL)');
}

/** The file path of a `file:` URL (query parameters dropped). */
export function sqlitePath(url: string): string {
  const path = url.slice('file:'.length).split('?')[0] ?? '';
  if (!path.startsWith('/')) throw new InvalidArgumentError('database.url: a SQLite file: URL needs an absolute path');
  return path;
}
