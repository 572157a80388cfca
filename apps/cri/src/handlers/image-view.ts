import { InvalidArgumentError, isCategory } from '@berth/errors';
import type { criV1 } from '@berth/proto';
import type { ImageConfig } from '@berth/spec';
import type { ImageRecord, Store } from '@berth/store-api';

/** Image configs never change for an id: the user they name is read once. */
const userCache = new Map<string, string>();

async function imageUser(store: Store, id: string): Promise<string> {
  const cached = userCache.get(id);
  if (cached !== undefined) return cached;
  const chunks: Buffer[] = [];
  for await (const c of store.content.read(id)) chunks.push(Buffer.from(c));
  let user = '';
  try {
    user = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageConfig).config?.User ?? '';
  } catch {
    user = '';
  }
  userCache.set(id, user);
  return user;
}

/**
 * The CRI's view of an image record. The user from the image config goes to
 * `uid` when it is numeric (the part before any ':'), to `username` otherwise,
 * as the kubelet expects.
 */
export async function toCriImage(store: Store, record: ImageRecord): Promise<criV1.Image> {
  const user = (await imageUser(store, record.id).catch(() => '')).split(':')[0] ?? '';
  const numeric = /^\d+$/.test(user);
  return {
    id: record.id,
    repoTags: record.names.filter((n) => n.kind === 'tag').map((n) => n.name),
    repoDigests: record.names.filter((n) => n.kind === 'digest').map((n) => n.name),
    size: BigInt(record.size),
    uid: numeric ? { value: BigInt(user) } : undefined,
    username: numeric ? '' : user,
    spec: { image: record.id, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' },
    pinned: record.pinned,
  };
}

/**
 * The image a CRI ImageSpec names, as containerd resolves one: a reference
 * (normalised: `busybox` is `docker.io/library/busybox:latest`), else an id
 * or a unique prefix of one, with or without `sha256:` (the store's lookup).
 * Undefined when there is none; a prefix of several ids is
 * FailedPreconditionError.
 */
export async function findImage(store: Store, spec: criV1.ImageSpec | undefined, normalise: (image: string) => string): Promise<ImageRecord | undefined> {
  const image = spec?.image ?? '';
  if (image === '') throw new InvalidArgumentError('an image is required');
  const candidates: string[] = [];
  try {
    candidates.push(normalise(image));
  } catch {
    // not a reference: only an id can match
  }
  if (candidates[0] !== image) candidates.push(image);
  for (const candidate of candidates) {
    try {
      return await store.getImage(candidate);
    } catch (err) {
      // Not there, or not a name the store could hold.
      if (!isCategory(err, 'not-found') && !isCategory(err, 'invalid-argument')) throw err;
    }
  }
  return undefined;
}
