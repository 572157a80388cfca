import type { FileHandle } from 'node:fs/promises';
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

/** What a writer takes: one piece of data, or several written as one without being joined. */
export type WriteData = Uint8Array | readonly Uint8Array[];

export const dataLength = (data: WriteData): number => (data instanceof Uint8Array ? data.length : data.reduce((n, d) => n + d.length, 0));

/**
 * Writes all of `data` at `position`: several pieces go in one writev(2),
 * so a batch of network chunks reaches the file without a copy into one
 * buffer. A short write (rare for a regular file) goes on from where it
 * stopped.
 */
export async function writeAllAt(handle: FileHandle, data: WriteData, position: number): Promise<void> {
  const pieces = data instanceof Uint8Array ? [data] : [...data];
  let at = position;
  while (pieces.length > 0) {
    const { bytesWritten } = pieces.length === 1 ? await handle.write(pieces[0]!, 0, pieces[0]!.length, at) : await handle.writev(pieces, at);
    at += bytesWritten;
    let skip = bytesWritten;
    while (pieces.length > 0 && skip >= pieces[0]!.length) skip -= pieces.shift()!.length;
    if (skip > 0) pieces[0] = pieces[0]!.subarray(skip);
  }
}
