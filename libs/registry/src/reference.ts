import { InvalidArgumentError } from '@berth/errors';
import { isDigest } from '@berth/spec';

/** A parsed image reference, normalised the way Docker and the kubelet do. */
export interface ImageReference {
  /** Registry host (with port), e.g. `docker.io`, `registry.k8s.io`, `127.0.0.1:5000`. */
  domain: string;
  /** Repository path, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

const defaultDomain = 'docker.io';
const componentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const domainPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/**
 * Parses and normalises a reference: `busybox` → docker.io/library/busybox:latest,
 * `repo@sha256:…`, `repo:tag@sha256:…`. Throws InvalidArgumentError naming what is wrong.
 */
export function parseReference(input: string): ImageReference {
  if (typeof input !== 'string' || input.length === 0 || input.length > 4096) throw new InvalidArgumentError('invalid image reference: empty or too long');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: bad digest`);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagPattern.test(tag)) throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: bad tag`);
  }
  let domain = defaultDomain;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = defaultDomain;
  if (!domainPattern.test(domain)) throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: bad registry host`);
  if (domain === defaultDomain && !path.includes('/')) path = `library/${path}`;
  if (path.length === 0 || path.length > 255 || !path.split('/').every((c) => componentPattern.test(c))) {
    throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: repository names are lower-case components separated by /`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** `domain/path` */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised string: `domain/path[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${repositoryName(ref)}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}
