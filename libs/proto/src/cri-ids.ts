// The CRI's ids, in one place: every call that takes a pod, container or
// image id takes its full id or a unique prefix of it, as crictl shows ids
// truncated (containerd's and Docker's truncindex, containerd's digestset
// for images). The executor resolves against its records, the CRI frontend
// against the lists it keeps, the store against its image ids, and the list
// filters use the same match.
import { FailedPreconditionError, InvalidArgumentError } from '@berth/errors';

/** The length of a pod or container id: 32 random bytes in lowercase hex. */
export const fullIdLength = 64;

const prefixPattern = /^[0-9a-f]+$/;

/**
 * Whether `id` has the form of a truncated pod or container id: lowercase
 * hex, shorter than a full id. An id of that form must name something; any
 * other id that names nothing (a full id, a UUID) is of something that is
 * not there, which StopPodSandbox, RemovePodSandbox, StopContainer and
 * RemoveContainer answer with success, as the kubelet expects.
 */
export function isIdPrefix(id: string): boolean {
  return id.length < fullIdLength && prefixPattern.test(id);
}

/**
 * The items whose id `query` names: the one whose id it is, else every one
 * whose id starts with it (none, one, or several when it is ambiguous).
 * `idOf` gives the id an item is matched by.
 */
export function matchId<T>(items: Iterable<T>, query: string, idOf: (item: T) => string): T[] {
  const matches: T[] = [];
  if (query === '') return matches;
  for (const item of items) {
    const id = idOf(item);
    if (id === query) return [item];
    if (id.startsWith(query)) matches.push(item);
  }
  return matches;
}

/**
 * The item `query` names, by its full id or a prefix of exactly one id;
 * undefined when it names none. An empty query is InvalidArgumentError; a
 * prefix of several ids is FailedPreconditionError (the caller must give
 * more of the id; containerd answers UNKNOWN there, its truncindex error
 * having no errdefs class). `what` names the kind of thing in the message.
 */
export function resolveId<T>(items: Iterable<T>, query: string, what: string, idOf: (item: T) => string): T | undefined {
  if (query === '') throw new InvalidArgumentError(`a ${what} id is required`);
  const matches = matchId(items, query, idOf);
  if (matches.length > 1) throw new FailedPreconditionError(`${what} id prefix ${JSON.stringify(query)} is ambiguous: it matches ${matches.length} ${what} ids`);
  return matches[0];
}
