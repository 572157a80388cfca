import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '@berth/errors';

/** Digest algorithms Berth accepts, with the length of their hex encoding. */
const algorithms = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof algorithms;

/** A validated content digest, e.g. `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __digest: unique symbol };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/**
 * Validates a digest string strictly (known algorithm, lowercase hex of the
 * exact length) before it is used anywhere, in particular in a path.
 * Throws InvalidArgumentError naming what is wrong.
 */
export function parseDigest(value: string): ParsedDigest & { digest: Digest } {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(value.slice(0, 80))}: no algorithm`);
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (!Object.hasOwn(algorithms, algorithm)) throw new InvalidArgumentError(`invalid digest: unsupported algorithm ${JSON.stringify(algorithm.slice(0, 20))}`);
  const length = algorithms[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) {
    throw new InvalidArgumentError(`invalid digest: ${algorithm} needs ${length} lowercase hex characters`);
  }
  return { algorithm: algorithm as DigestAlgorithm, hex, digest: value as Digest };
}

export function isDigest(value: string): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

/** The sha256 digest of some bytes. */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}
