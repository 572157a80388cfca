import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { InvalidArgumentError } from '@berth/errors';

/** One place to fetch a registry's content from: a mirror or the upstream itself. */
export interface RegistryEndpoint {
  /** host[:port] as it goes on the wire. */
  host: string;
  scheme: 'http' | 'https';
  /** True for the registry the image is named after (credentials go only there). */
  upstream: boolean;
  /** Path prefix that replaces /v2 (hosts.toml `override_path`), without a trailing slash. */
  pathPrefix: string;
  /** TLS settings from hosts.toml: extra CA certificates, a client certificate, skip_verify. */
  tls?: EndpointTls;
}

export interface EndpointTls {
  /** PEM files of CAs to trust (besides the system's). */
  ca?: string[];
  /** A client certificate and its key (PEM files). */
  client?: { cert: string; key: string };
  /** Accept any server certificate: only when the operator configured it. */
  skipVerify?: boolean;
}

/** Reads hosts.toml TLS keys: `ca` (a path or list), `client` (a path, [cert, key] or [[cert, key]]), `skip_verify`. */
function tlsOf(settings: Record<string, unknown>, file: string): EndpointTls | undefined {
  const tls: EndpointTls = {};
  const ca = settings['ca'];
  if (typeof ca === 'string') tls.ca = [ca];
  else if (Array.isArray(ca) && ca.every((c) => typeof c === 'string')) tls.ca = ca as string[];
  else if (ca !== undefined) throw new InvalidArgumentError(`${file}: ca must be a path or a list of paths`);
  const client = settings['client'];
  const pair = Array.isArray(client) && Array.isArray(client[0]) ? (client[0] as unknown[]) : Array.isArray(client) ? client : typeof client === 'string' ? [client] : undefined;
  if (pair !== undefined) {
    const [cert, key] = pair;
    if (typeof cert !== 'string') throw new InvalidArgumentError(`${file}: client must name a certificate file`);
    tls.client = { cert, key: typeof key === 'string' ? key : cert };
  }
  if (settings['skip_verify'] === true) tls.skipVerify = true;
  return Object.keys(tls).length === 0 ? undefined : tls;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\./.test(name);
}

function endpointFromUrl(url: string, upstream: boolean, overridePath: boolean, file: string): RegistryEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `https://${url}`);
  } catch {
    throw new InvalidArgumentError(`${file}: ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidArgumentError(`${file}: ${url}: only http and https are supported`);
  const path = parsed.pathname.replace(/\/+$/, '');
  return { host: parsed.host, scheme: parsed.protocol === 'http:' ? 'http' : 'https', upstream, pathPrefix: overridePath ? path : `${path}/v2` };
}

/**
 * The endpoints to try for `domain`, in order, from a containerd-style hosts
 * directory: `<hostsDir>/<domain>/hosts.toml` lists mirrors as
 * `[host."<url>"]` tables (tried in file order, those with the `pull`
 * capability), then the upstream (`server = "<url>"`, or https://<domain>).
 * Plain http is used where a URL says so, and for loopback hosts and hosts in
 * `insecure`. docker.io's upstream is registry-1.docker.io.
 */
export function resolveEndpoints(domain: string, hostsDir: string | undefined, insecure: string[] = []): RegistryEndpoint[] {
  const defaultUpstream = domain === 'docker.io' ? 'registry-1.docker.io' : domain;
  const plain = isLoopback(domain) || insecure.includes(domain);
  let upstream: RegistryEndpoint = { host: defaultUpstream, scheme: plain ? 'http' : 'https', upstream: true, pathPrefix: '/v2' };
  const mirrors: RegistryEndpoint[] = [];
  if (hostsDir !== undefined && hostsDir !== '') {
    // `domain` comes from a parsed reference: a host name or address with an optional port, never a path.
    const file = join(hostsDir, domain, 'hosts.toml');
    let doc: Record<string, unknown> | undefined;
    try {
      doc = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InvalidArgumentError(`${file}: ${(err as Error).message}`);
    }
    if (doc !== undefined) {
      if (typeof doc['server'] === 'string') upstream = { ...endpointFromUrl(doc['server'], true, false, file), upstream: true };
      const upstreamTls = tlsOf(doc, file);
      if (upstreamTls !== undefined) upstream.tls = upstreamTls;
      const hosts = (doc['host'] ?? {}) as Record<string, Record<string, unknown>>;
      for (const [url, settings] of Object.entries(hosts)) {
        const caps = Array.isArray(settings['capabilities']) ? (settings['capabilities'] as string[]) : ['pull', 'resolve'];
        if (!caps.includes('pull')) continue;
        const endpoint = endpointFromUrl(url, false, settings['override_path'] === true, file);
        const tls = tlsOf(settings, file);
        mirrors.push(tls === undefined ? endpoint : { ...endpoint, tls });
      }
    }
  }
  return [...mirrors, upstream];
}
