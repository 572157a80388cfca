import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { FailedPreconditionError, wrap } from '@berth/errors';

/**
 * Refuses a directory Berth keeps private state in (the state dir, the run
 * dir) when another user could change what is in it: writable by others
 * (mode & 0o002), or owned by a user that is neither root nor the running
 * one. Throws FailedPreconditionError naming the path and the fix; a path
 * that does not exist yet passes (Berth creates it).
 */
export function checkPrivateDir(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw wrap(err, `inspect ${path}`);
  }
  const self = process.getuid?.() ?? 0;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (!st.isDirectory()) throw new FailedPreconditionError(`${path} is not a directory; Berth keeps its state in a directory there`);
  if ((st.mode & 0o002) !== 0)
    throw new FailedPreconditionError(`${path} is writable by every user (mode ${mode}); Berth refuses to keep its state there: run chmod 0700 ${path}, or configure another directory`);
  if (st.uid !== 0 && st.uid !== self)
    throw new FailedPreconditionError(`${path} is owned by another user (uid ${st.uid}); Berth refuses to keep its state there: run chown ${self} ${path} && chmod 0700 ${path}, or configure another directory`);
}

/**
 * Checks `path` with {@link checkPrivateDir}, creates it if missing, and
 * narrows its mode to `mode` (0700 unless given) when it is wider. Safe to repeat.
 */
export function ensurePrivateDir(path: string, mode = 0o700): void {
  checkPrivateDir(path);
  mkdirSync(path, { recursive: true, mode });
  const current = statSync(path).mode & 0o7777;
  if ((current & ~mode) !== 0) chmodSync(path, current & mode);
}
