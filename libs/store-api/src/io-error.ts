import { ResourceExhaustedError, wrap } from '@berth/errors';

/**
 * An I/O failure on the store's files, from the store itself or from a
 * client writing them locally: a full disk (or quota) is resource-exhausted,
 * anything else keeps its meaning.
 */
export function storeIoError(err: unknown, context: string): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ResourceExhaustedError(`${context}: no space left on the store's filesystem`, { cause: err });
  return wrap(err, context);
}
