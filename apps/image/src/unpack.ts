import { FailedPreconditionError, InternalError, ResourceExhaustedError } from '@berth/errors';
import { applyLayerChunks, LayerApplier, type LayerApplyError, type LayerApplyResult } from '@berth/native';
import type { LayerCompression } from '@berth/spec';

export interface ApplyOptions {
  compression: LayerCompression;
  /** Refuse a layer that decompresses to more than this many bytes. */
  maxUncompressedBytes: number;
}

/** The diff ID (sha256 of the uncompressed tar: must equal the config's diff_id) and the uncompressed size. */
export type ApplyResult = LayerApplyResult;

/**
 * Applies one layer (an OCI changeset tar, compressed or not) to `root`, the
 * upper directory of an active overlay snapshot, and returns its diff ID.
 *
 * The work is native (`applyLayerChunks` in @berth/native: zlib or libzstd,
 * libarchive, on a thread of its own): files, directories, symlinks, hard
 * links (to entries of the same layer), devices, fifos, ownership, modes
 * (setuid included), mtimes and xattrs; OCI whiteouts become overlay
 * whiteouts (`.wh.x` → a 0/0 character device; `.wh..wh..opq` → the opaque
 * xattr). Entries that climb out of the root, through a symlink, or to a
 * hard-link target outside the layer are refused, as is a layer that
 * decompresses to more than maxUncompressedBytes: FAILED_PRECONDITION, as
 * the layer is at fault. A full disk is RESOURCE_EXHAUSTED.
 *
 * The tar may end where Go's archive/tar (containerd, CRI-O) lets it: where
 * a header would begin, or right after the last entry's data or partway
 * through its padding, with no end-of-archive blocks (umoci writes layers so);
 * the diff ID is of the bytes as given. Cut inside an entry's data or a
 * header, or with anything but a second zero block after a first, it is
 * refused (FAILED_PRECONDITION).
 */
export async function applyLayer(blob: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, root: string, options: ApplyOptions): Promise<ApplyResult> {
  try {
    return await applyLayerChunks(blob, root, options.compression, options.maxUncompressedBytes);
  } catch (err) {
    throw applyError(err);
  }
}

/** The BerthError for a failed apply: the layer's fault is FAILED_PRECONDITION, a full disk RESOURCE_EXHAUSTED. */
function applyError(err: unknown): unknown {
  const e = err as Partial<LayerApplyError> & Error;
  if (e.layerFault === true) return new FailedPreconditionError(e.message, { cause: err });
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return new ResourceExhaustedError(`unpacking a layer: ${e.message}`, { cause: err });
  if (e.layerFault === false) return new InternalError(`unpacking a layer: ${e.message}`, { cause: err });
  return err;
}

/** Where a streamed unpack writes: a snapshot prepared for it, and how to drop it. */
export interface UnpackTarget {
  prepare(): Promise<{ key: string; root: string }>;
  remove(key: string): Promise<void>;
}

/**
 * A layer unpacked while it downloads: it is fed the batches the store's
 * ingest is written with, in the same order, from the blob's first byte, so
 * the layer is applied by the time its last byte lands. Anything irregular
 * (an ingest resumed from an earlier attempt, a retry, a blob another pull
 * fetched) spoils it: what it wrote is dropped and the layer unpacks from the
 * store once downloaded, as before. A layer the applier refuses fails the
 * same way either way.
 */
export class StreamedUnpack {
  private applier: LayerApplier | undefined;
  private key: string | undefined;
  private spoiled = false;
  private fed = 0;

  constructor(
    private readonly target: UnpackTarget,
    private readonly options: ApplyOptions,
  ) {}

  /** A download attempt starts at `offset`: only one from the first byte, the first to feed, can be followed. */
  begin(offset: number): void {
    if (offset !== 0 || this.fed > 0) this.spoil();
  }

  /** The next batch of the blob, as written to the ingest; resolves once the applier has taken it. */
  async push(batch: Uint8Array[]): Promise<void> {
    if (this.spoiled) return;
    try {
      if (this.applier === undefined) {
        const { key, root } = await this.target.prepare();
        this.key = key;
        if (this.spoiled) return;
        this.applier = new LayerApplier(root, this.options.compression, this.options.maxUncompressedBytes);
      }
      await this.applier.push(batch);
      for (const c of batch) this.fed += c.length;
    } catch {
      this.spoil();
    }
  }

  /** Stops following the download; {@link finish} will then drop what was written. */
  spoil(): void {
    this.spoiled = true;
    void this.applier?.abort();
  }

  /**
   * After the download of `size` bytes: the snapshot key and the result when
   * the whole blob went through the applier; undefined, with everything
   * undone, when it did not. Throws the applier's error when the layer itself
   * was refused (its snapshot removed).
   */
  async finish(size: number): Promise<{ key: string; result: ApplyResult } | undefined> {
    const { applier, key } = this;
    if (this.spoiled || applier === undefined || key === undefined || this.fed !== size) {
      await this.discard();
      return undefined;
    }
    try {
      return { key, result: await applier.end() };
    } catch (err) {
      await this.discard();
      throw applyError(err);
    }
  }

  /** Stops the applier and removes its snapshot. */
  async discard(): Promise<void> {
    this.spoiled = true;
    await this.applier?.abort();
    const key = this.key;
    this.key = undefined;
    if (key !== undefined) await this.target.remove(key).catch(() => undefined);
  }
}
