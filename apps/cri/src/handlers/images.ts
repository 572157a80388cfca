import { InvalidArgumentError, isCategory, UnavailableError } from '@berth/errors';
import type { criV1 } from '@berth/proto';
import { formatReference, parseReference } from '@berth/registry';
import type { FsUsage } from '@berth/store-api';
import type { Backends } from '../backends.js';
import { findImage, toCriImage } from './image-view.js';

const normalise = (image: string): string => formatReference(parseReference(image));

/** How long a pull may go without a heartbeat before its replica is presumed dead. */
const silenceMs = 10_000;

class ReplicaLost extends UnavailableError {}

/**
 * Runs `call` while listening to the pull's heartbeats (the image service
 * sends one a second per pull). Silence for `silenceMs` means the replica
 * doing the pull died: the call is abandoned with ReplicaLost so the caller
 * can ask again, and another replica takes it; the store's ingest locks and
 * the dead replica's lease keep its partial work from corrupting anything.
 */
async function watched<T>(backends: Backends, image: string, call: () => Promise<T>): Promise<T> {
  let last = Date.now();
  const stop = backends.watchPull(image, () => (last = Date.now()));
  let timer: NodeJS.Timeout | undefined;
  const silence = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (Date.now() - last > silenceMs) reject(new ReplicaLost(`the image service replica pulling ${image} stopped answering`));
    }, 500);
  });
  const pending = call();
  pending.catch(() => undefined); // it may fail after being abandoned
  try {
    return await Promise.race([pending, silence]);
  } finally {
    clearInterval(timer);
    stop();
  }
}

/**
 * What ImageFsInfo answers. The kubelet asks every few seconds; the store's
 * figures change with pulls, removals, garbage collection and container
 * writes (and the store itself measures active snapshots at most every 5 s).
 * A measurement younger than `freshMs` is answered as it is; an older one
 * (up to `staleMs`) is answered while a new one is taken behind it, its
 * timestamp saying when it was measured; after a pull or a removal through
 * this frontend, or past `staleMs`, the caller waits for a new one.
 */
export class FsUsageView {
  private last: { at: number; usage: FsUsage } | undefined;
  private measuring: { generation: number; usage: Promise<FsUsage> } | undefined;
  private generation = 0;

  constructor(
    private readonly backends: Backends,
    private readonly freshMs = 2000,
    private readonly staleMs = 30_000,
  ) {}

  /** Call after anything that changes what the store holds. */
  changed(): void {
    this.generation++;
    this.last = undefined;
  }

  async get(): Promise<FsUsage> {
    const last = this.last;
    const age = last === undefined ? Infinity : Date.now() - last.at;
    if (last !== undefined && age < this.freshMs) return last.usage;
    const measured = this.measure();
    if (last === undefined || age >= this.staleMs) return measured;
    measured.catch(() => undefined);
    return last.usage;
  }

  private measure(): Promise<FsUsage> {
    if (this.measuring?.generation === this.generation) return this.measuring.usage;
    const generation = this.generation;
    const at = Date.now();
    const usage = this.backends.images.fsUsage().then(
      (u) => {
        if (generation === this.generation) this.last = { at, usage: u };
        return u;
      },
    ).finally(() => {
      if (this.measuring?.usage === usage) this.measuring = undefined;
    });
    this.measuring = { generation, usage };
    return usage;
  }
}

/** PullImage: the image service pulls (one replica, through the queue group); the reply is the image id. */
export function createPullImageHandler(backends: Backends, usage?: FsUsageView) {
  return async (request: criV1.PullImageRequest): Promise<criV1.PullImageResponse> => {
    const image = request.image?.image ?? '';
    if (image === '') throw new InvalidArgumentError('PullImage needs an image');
    parseReference(image);
    const a = request.auth;
    const auth = a === undefined ? undefined : { username: a.username, password: a.password, auth: a.auth, identityToken: a.identityToken, registryToken: a.registryToken };
    const name = normalise(image);
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await watched(backends, name, () => backends.pullImage({ image, ...(auth === undefined ? {} : { auth }) }, 60 * 60 * 1000));
        usage?.changed();
        return { imageRef: reply.imageId };
      } catch (err) {
        if (!(err instanceof ReplicaLost) || attempt >= 3) throw err;
      }
    }
  };
}

/**
 * ListImages: every image, or the one the filter's image names (by tag,
 * digest, id or a unique id prefix); an ambiguous prefix names none, as in
 * the pod and container list filters.
 */
export function createListImagesHandler(backends: Backends) {
  return async (request: criV1.ListImagesRequest): Promise<criV1.ListImagesResponse> => {
    const store = backends.images;
    if (request.filter?.image?.image) {
      const one = await findImage(store, request.filter.image, normalise).catch((err: unknown) => {
        if (isCategory(err, 'failed-precondition')) return undefined;
        throw err;
      });
      return { images: one === undefined ? [] : [await toCriImage(store, one)] };
    }
    return { images: await Promise.all((await store.listImages()).map((r) => toCriImage(store, r))) };
  };
}

/** ImageStatus: the image, or no image (not an error) when it is not there. */
export function createImageStatusHandler(backends: Backends) {
  return async (request: criV1.ImageStatusRequest): Promise<criV1.ImageStatusResponse> => {
    const record = await findImage(backends.images, request.image, normalise);
    if (record === undefined) return { image: undefined, info: {} };
    const info: Record<string, string> = request.verbose ? { info: JSON.stringify({ manifestDigest: record.manifestDigest, topChainId: record.topChainId, names: record.names, createdAt: record.createdAt }) } : {};
    return { image: await toCriImage(backends.images, record), info };
  };
}

/**
 * RemoveImage: by id (or a unique prefix of one) removes the image; by a
 * tag or digest removes that name only while the image has other tags (as
 * CRI-O and Docker do; containerd 1.6 removes every name), and the image
 * goes with its last tag, its digest names with it (as containerd, CRI-O
 * and Docker do; the store's removeImageName), its blobs and snapshots with
 * the garbage collection that follows. Removing what is not there succeeds,
 * as the kubelet expects.
 */
export function createRemoveImageHandler(backends: Backends, usage?: FsUsageView) {
  return async (request: criV1.RemoveImageRequest): Promise<criV1.RemoveImageResponse> => {
    const image = request.image?.image ?? '';
    const record = await findImage(backends.images, request.image, normalise);
    if (record === undefined) return {};
    const byName = record.names.find((n) => n.name === image || (() => { try { return n.name === normalise(image); } catch { return false; } })());
    try {
      if (byName !== undefined) await backends.images.removeImageName(byName.name);
      else await backends.images.deleteImage(record.id);
    } catch (err) {
      // Removed meanwhile by another call: what was asked for is done.
      if (!isCategory(err, 'not-found')) throw err;
    }
    usage?.changed();
    return {};
  };
}

/** ImageFsInfo: the store's filesystem with the bytes and inodes of content and snapshots. */
export function createImageFsInfoHandler(view: FsUsageView) {
  return async (): Promise<criV1.ImageFsInfoResponse> => {
    const u = await view.get();
    const timestamp = BigInt(u.timestamp.getTime()) * 1_000_000n;
    const usage = (bytes: number, inodes: number): criV1.FilesystemUsage => ({ timestamp, fsId: { mountpoint: u.mountpoint }, usedBytes: { value: BigInt(bytes) }, inodesUsed: { value: BigInt(inodes) } });
    return {
      imageFilesystems: [usage(u.content.bytes + u.snapshots.bytes, u.content.inodes + u.snapshots.inodes)],
      containerFilesystems: [],
    };
  };
}
