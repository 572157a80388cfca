// Images for pods and containers: found in the store by id or name, their
// config read from the store's content; the sandbox image is pulled through
// the image service (so registry mirrors apply) when it is not there yet.
import { subjects, type Bus } from '@berth/bus';
import { FailedPreconditionError, isCategory, NotFoundError, UnavailableError } from '@berth/errors';
import { formatReference, parseReference } from '@berth/registry';
import type { ImageRecord, Store } from '@berth/store-api';

export interface ImageConfigFile {
  config?: {
    User?: string;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    StopSignal?: string;
  };
}

export interface ResolvedImage {
  record: ImageRecord;
  config: ImageConfigFile;
  /** The name the image was asked for by, normalised (or the id). */
  name: string;
}

const maxConfigBytes = 4 * 1024 * 1024;
/** Image configs kept in memory (the oldest goes first). */
const maxKeptConfigs = 256;

/** Undefined for a store lookup that found nothing (or was given something that is no image name); any other failure is thrown. */
function notFound(err: unknown): undefined {
  if (isCategory(err, 'not-found') || isCategory(err, 'invalid-argument')) return undefined;
  throw err;
}

export class ImageResolver {
  private readonly configs = new Map<string, ImageConfigFile>();

  /** `builtin`: the sandbox image is Berth's own, imported by the image service at its start, never pulled. */
  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly sandboxRef: string,
    private readonly builtin: boolean,
  ) {}

  /**
   * The image `ref` names, as containerd resolves an image: a full id, else
   * a reference (normalised), else a unique prefix of an id (the store's
   * lookup; an ambiguous one is FailedPreconditionError). NotFoundError
   * when there is none.
   */
  async resolve(ref: string): Promise<ResolvedImage> {
    if (ref === '') throw new NotFoundError('no image given');
    const byId = /^(sha256:)?[a-f0-9]{64}$/.test(ref) ? (ref.startsWith('sha256:') ? ref : `sha256:${ref}`) : undefined;
    let name = byId;
    let notAReference: unknown;
    try {
      name ??= formatReference(parseReference(ref));
    } catch (err) {
      if (!isCategory(err, 'invalid-argument')) throw err;
      notAReference = err;
    }
    let record: ImageRecord | undefined;
    if (name !== undefined) record = await this.store.getImage(name).catch((err: unknown) => notFound(err));
    if (record === undefined && byId === undefined) {
      record = await this.store.getImage(ref).catch((err: unknown) => notFound(err));
      if (record !== undefined) name = record.id;
    }
    if (record === undefined || name === undefined) {
      if (notAReference !== undefined) throw notAReference;
      throw new NotFoundError(`image ${JSON.stringify(ref)} not found: pull it first`);
    }
    return { record, config: await this.config(record.id), name };
  }

  /** An image config by its digest: read from the store once, then kept (content-addressed, so it cannot go stale). */
  private async config(digest: string): Promise<ImageConfigFile> {
    const kept = this.configs.get(digest);
    if (kept !== undefined) return kept;
    const info = await this.store.content.info(digest);
    if (info.size > maxConfigBytes) throw new FailedPreconditionError(`image config ${digest} is larger than ${maxConfigBytes} bytes`);
    const chunks: Uint8Array[] = [];
    for await (const c of this.store.content.read(digest)) chunks.push(c);
    const config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageConfigFile;
    this.configs.set(digest, config);
    if (this.configs.size > maxKeptConfigs) this.configs.delete(this.configs.keys().next().value!);
    return config;
  }

  /** The configured sandbox image, pulled when missing; the built-in one is waited for (up to a minute) while the image service imports it. */
  async sandboxImage(): Promise<ResolvedImage> {
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        return await this.resolve(this.sandboxRef);
      } catch (err) {
        if (!isCategory(err, 'not-found')) throw err;
        if (!this.builtin) break;
        if (Date.now() > until) throw new UnavailableError(`the built-in sandbox image ${this.sandboxRef} is not imported yet; is berth-image running?`, { cause: err });
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await this.bus.request(subjects.imagePull, { image: this.sandboxRef }, { timeoutMs: 30 * 60 * 1000 });
    return this.resolve(this.sandboxRef);
  }
}
