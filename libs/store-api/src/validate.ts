import { InvalidArgumentError } from '@berth/errors';
import { parseDigest } from '@berth/spec';
import type { Labels, LeaseResource } from './types.js';

const printable = /^[\x21-\x7e]+$/;

/** An ingest ref, a snapshot key or a lease id: 1–256 printable ASCII characters, no spaces. */
export function validateName(what: string, value: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || !printable.test(value)) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(String(value).slice(0, 64))}: 1 to 256 printable characters without spaces`);
  }
  return value;
}

export function validateDigest(value: string): string {
  return parseDigest(value).digest;
}

const maxLabelKey = 256;
const maxLabelValue = 4096;
const maxLabelsTotal = 64 * 1024;

/** Label keys are printable and short; the whole set stays under 64 KiB. */
export function validateLabels(labels: Labels | undefined): Labels {
  if (labels === undefined) return {};
  let total = 0;
  for (const [k, v] of Object.entries(labels)) {
    if (k.length === 0 || k.length > maxLabelKey || !printable.test(k)) throw new InvalidArgumentError(`invalid label key ${JSON.stringify(k.slice(0, 64))}`);
    if (typeof v !== 'string' || v.length > maxLabelValue) throw new InvalidArgumentError(`label ${k}: value longer than ${maxLabelValue} characters`);
    total += k.length + v.length;
  }
  if (total > maxLabelsTotal) throw new InvalidArgumentError(`labels larger than ${maxLabelsTotal} bytes`);
  return { ...labels };
}

export function validateLeaseResource(resource: LeaseResource): LeaseResource {
  if (resource.kind !== 'blob' && resource.kind !== 'snapshot' && resource.kind !== 'ingest') {
    throw new InvalidArgumentError(`invalid lease resource kind ${JSON.stringify(String(resource.kind))}`);
  }
  if (resource.kind === 'blob') validateDigest(resource.ref);
  else validateName(resource.kind === 'snapshot' ? 'snapshot key' : 'ingest ref', resource.ref);
  return { kind: resource.kind, ref: resource.ref };
}

/** A size as sent over the wire: a non-negative safe integer. */
export function validateSize(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`invalid ${what} ${value}`);
  return value;
}
