import { FailedPreconditionError, InternalError, ResourceExhaustedError } from '@berth/errors';
import { applyLayerChunks, type LayerApplyError } from '@berth/native';
import type { LayerCompression } from '@berth/spec';

export interface ApplyOptions {
  compression: LayerCompression;
  /** Refuse a layer that decompresses to more than this many bytes. */
  maxUncompressedBytes: number;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar: must equal the config's diff_id. */
  diffId: string;
  uncompressedBytes: number;
}

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
 */
export async function applyLayer(blob: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, root: string, options: ApplyOptions): Promise<ApplyResult> {
  try {
    const { diffId, bytes } = await applyLayerChunks(blob, root, options.compression, options.maxUncompressedBytes);
    return { diffId, uncompressedBytes: bytes };
  } catch (err) {
    const e = err as Partial<LayerApplyError> & Error;
    if (e.layerFault === true) throw new FailedPreconditionError(e.message, { cause: err });
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') throw new ResourceExhaustedError(`unpacking a layer: ${e.message}`, { cause: err });
    if (e.layerFault === false) throw new InternalError(`unpacking a layer: ${e.message}`, { cause: err });
    throw err;
  }
}
