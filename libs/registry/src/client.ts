import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError } from '@berth/errors';
import { sha256Digest } from '@berth/spec';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import type { RegistryEndpoint } from './hosts.js';
import type { ImageReference } from './reference.js';

/** Credentials for one registry, as the CRI's AuthConfig carries them. */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** base64("user:password") */
  auth?: string;
  identityToken?: string;
  /** A bearer token to send as is. */
  registryToken?: string;
}

export interface RegistryClientOptions {
  /** Gives up on a request that sends no bytes for this long. */
  progressTimeoutMs?: number;
  /** Largest manifest or index accepted. */
  maxManifestBytes?: number;
}

const manifestAccept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1',
].join(', ');

/**
 * A registry's answer: status, headers and a Node stream of the body (no web
 * streams: a blob's bytes go from the socket to the caller with no extra
 * layers). A body not wanted must be `discard`ed so the connection is reused.
 */
export interface RegistryResponse {
  status: number;
  header(name: string): string | undefined;
  body: Readable;
  discard(): Promise<void>;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | null | undefined): Challenge | undefined {
  if (header === null || header === undefined) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (m === null) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme, params };
}

/**
 * A client of one registry (OCI distribution API), with the
 * WWW-Authenticate challenge flow (basic, and bearer tokens scoped per
 * repository and cached until they expire). Credentials are only ever sent to
 * the registry host itself: redirects (to a blob CDN, say) are followed
 * without them.
 */
export class RegistryClient {
  private readonly base: string;
  private readonly prefix: string;
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  private authorization: string | undefined;
  private readonly credentials: RegistryCredentials | undefined;
  /** Set when the endpoint has its own TLS settings. */
  private readonly dispatcher: Dispatcher | undefined;
  readonly host: string;

  /**
   * One HTTP request, no redirects followed, through this endpoint's TLS
   * settings (`own`) or the default ones (a foreign host, which must not get
   * this endpoint's client certificate).
   */
  private async http(url: string | URL, init: { method?: 'GET' | 'POST'; headers: Record<string, string>; body?: string; signal?: AbortSignal }, own = true): Promise<RegistryResponse> {
    const dispatcher = own ? this.dispatcher : undefined;
    const res = await request(url, { method: init.method ?? 'GET', headers: init.headers, ...(init.body === undefined ? {} : { body: init.body }), ...(init.signal ? { signal: init.signal } : {}), ...(dispatcher ? { dispatcher } : {}) });
    // A body the caller has not started reading yet may break meanwhile: the break is for its
    // reader to see (a destroyed stream throws on iteration), never an unhandled 'error' event.
    res.body.on('error', () => undefined);
    return {
      status: res.statusCode,
      header: (name) => {
        const v = res.headers[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v;
      },
      body: res.body,
      discard: async () => {
        await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      },
    };
  }

  /**
   * A client of one endpoint. The credentials are used only when the
   * endpoint is the upstream registry they were given for, never a mirror.
   */
  constructor(
    e: RegistryEndpoint,
    credentials: RegistryCredentials | undefined,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.host = e.host;
    this.base = `${e.scheme}://${e.host}`;
    this.prefix = e.pathPrefix;
    this.credentials = e.upstream ? credentials : undefined;
    if (e.tls !== undefined) {
      const t = e.tls;
      this.dispatcher = new Agent({
        connect: {
          ...(t.ca ? { ca: t.ca.map((p) => readFileSync(p, 'utf8')) } : {}),
          ...(t.client ? { cert: readFileSync(t.client.cert, 'utf8'), key: readFileSync(t.client.key, 'utf8') } : {}),
          rejectUnauthorized: t.skipVerify !== true,
        },
      });
    }
    if (this.credentials?.registryToken) this.authorization = `Bearer ${this.credentials.registryToken}`;
  }

  private basic(): string | undefined {
    const c = this.credentials;
    if (c?.auth) return `Basic ${c.auth}`;
    if (c?.username !== undefined && c.username !== '') return `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
    return undefined;
  }

  private async token(challenge: Challenge, scope: string): Promise<string> {
    const realm = challenge.params['realm'];
    if (realm === undefined) throw new PermissionDeniedError(`${this.host}: bearer challenge without a realm`);
    const url = new URL(realm);
    if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
    url.searchParams.set('scope', challenge.params['scope'] ?? scope);
    const key = url.toString();
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return cached.token;
    const headers: Record<string, string> = {};
    const basic = this.basic();
    if (basic) headers['authorization'] = basic;
    let res: RegistryResponse;
    if (this.credentials?.identityToken) {
      const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.credentials.identityToken, service: challenge.params['service'] ?? '', scope: url.searchParams.get('scope') ?? scope, client_id: 'berth' });
      res = await this.send(realm, { method: 'POST', body: body.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } else {
      res = await this.send(key, { headers });
    }
    if (res.status < 200 || res.status >= 300) {
      await res.discard();
      if (res.status === 401 || res.status === 403) throw new PermissionDeniedError(`${this.host}: the token server refused the credentials (${res.status})`);
      throw new UnavailableError(`${this.host}: token server answered ${res.status}`);
    }
    let json: { token?: string; access_token?: string; expires_in?: number };
    try {
      json = JSON.parse((await readLimited(res.body, 1024 * 1024, `${this.host}: token answer`)).toString('utf8')) as typeof json;
    } catch (err) {
      if (err instanceof Error && 'category' in err) throw err;
      throw new UnavailableError(`${this.host}: the token server sent no JSON`);
    }
    const token = json.token ?? json.access_token;
    if (typeof token !== 'string' || token === '') throw new UnavailableError(`${this.host}: the token server sent no token`);
    const ttl = Math.max(60, Number(json.expires_in ?? 60));
    this.tokens.set(key, { token, expires: Date.now() + (ttl - 10) * 1000 });
    return token;
  }

  private async send(url: string, init: { method?: 'GET' | 'POST'; headers: Record<string, string>; body?: string }): Promise<RegistryResponse> {
    const signal = AbortSignal.timeout(this.options.progressTimeoutMs ?? 60_000);
    try {
      return await this.http(url, { ...init, signal });
    } catch (err) {
      throw requestError(err, signal, new URL(url).host);
    }
  }

  /**
   * A GET against this registry with authentication and manual redirects:
   * a redirect elsewhere is followed without credentials.
   */
  async get(path: string, repository: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<RegistryResponse> {
    try {
      return await this.getOnce(path, repository, headers, signal);
    } catch (err) {
      throw requestError(err, signal, this.host);
    }
  }

  private async getOnce(path: string, repository: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<RegistryResponse> {
    const scope = `repository:${repository}:pull`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const h: Record<string, string> = { ...headers };
      if (this.authorization) h['authorization'] = this.authorization;
      let url = new URL(`${this.base}${path}`);
      let res = await this.http(url, { headers: h, ...(signal ? { signal } : {}) });
      if (res.status === 401 && attempt === 0) {
        await res.discard();
        const challenge = parseChallenge(res.header('www-authenticate'));
        if (challenge?.scheme === 'bearer') this.authorization = `Bearer ${await this.token(challenge, scope)}`;
        else if (challenge?.scheme === 'basic' && this.basic()) this.authorization = this.basic();
        else throw new PermissionDeniedError(`${this.host}: authentication required for ${repository}`);
        continue;
      }
      let hops = 0;
      while (res.status >= 300 && res.status < 400 && res.header('location') !== undefined && hops++ < 5) {
        const next = new URL(res.header('location')!, url);
        await res.discard();
        const sameHost = next.host === this.host;
        const rh: Record<string, string> = { ...headers };
        if (sameHost && this.authorization) rh['authorization'] = this.authorization;
        // Another host gets neither the credentials nor this endpoint's client certificate.
        res = await this.http(next, { headers: rh, ...(signal ? { signal } : {}) }, sameHost);
        url = next;
      }
      if (res.status === 401 || res.status === 403) {
        await res.discard();
        throw new PermissionDeniedError(`${this.host}: access to ${repository} denied (${res.status})`);
      }
      return res;
    }
    throw new PermissionDeniedError(`${this.host}: authentication failed for ${repository}`);
  }

  /**
   * Fetches a manifest or index by tag or digest, reading at most
   * maxManifestBytes, and returns its bytes with their digest. When the
   * reference is a digest, the bytes must hash to it.
   */
  async manifest(ref: ImageReference, reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string }> {
    const signal = AbortSignal.timeout(this.options.progressTimeoutMs ?? 60_000);
    const res = await this.get(`${this.prefix}/${ref.path}/manifests/${reference}`, ref.path, { accept: manifestAccept }, signal);
    if (res.status === 404) {
      await res.discard();
      throw new NotFoundError(`${this.host}/${ref.path}:${reference}: not found`);
    }
    if (res.status < 200 || res.status >= 300) {
      await res.discard();
      throw new UnavailableError(`${this.host}: manifest request answered ${res.status}`);
    }
    const limit = this.options.maxManifestBytes ?? 4 * 1024 * 1024;
    const declared = Number(res.header('content-length') ?? '0');
    if (declared > limit) {
      res.body.destroy();
      throw new FailedPreconditionError(`${this.host}/${ref.path}: manifest of ${declared} bytes is larger than the ${limit} allowed`);
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(res.body, limit, `${this.host}/${ref.path}: manifest`);
    } catch (err) {
      throw requestError(err, signal, this.host);
    }
    const digest = sha256Digest(bytes);
    if (reference.includes(':') && reference.startsWith('sha256:') && digest !== reference) {
      throw new FailedPreconditionError(`${this.host}/${ref.path}: manifest content hashes to ${digest}, not the ${reference} asked for`);
    }
    return { bytes, digest, mediaType: (res.header('content-type') ?? '').split(';')[0]!.trim() };
  }

  /** Starts a blob download, from `offset` when resuming (Range). */
  async blob(ref: ImageReference, digest: string, offset = 0, signal?: AbortSignal): Promise<RegistryResponse> {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new InvalidArgumentError(`invalid blob digest ${JSON.stringify(digest.slice(0, 80))}`);
    const res = await this.get(`${this.prefix}/${ref.path}/blobs/${digest}`, ref.path, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
    if (res.status === 404) {
      await res.discard();
      throw new NotFoundError(`${this.host}/${ref.path}: blob ${digest} not found`);
    }
    if (!(res.status === 200 || (offset > 0 && res.status === 206))) {
      await res.discard();
      throw new UnavailableError(`${this.host}: blob request answered ${res.status}`);
    }
    return res;
  }
}

/** A body read whole, refused past `limit` bytes. */
async function readLimited(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new FailedPreconditionError(`${what} larger than the ${limit} bytes allowed`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** A request's failure as Berth's error: out of time (the signal fired), or the host unreachable. */
function requestError(err: unknown, signal: AbortSignal | undefined, host: string): Error {
  if (err instanceof Error && 'category' in err) return err;
  const timedOut = signal?.aborted === true || (err as Error).name === 'TimeoutError';
  if (timedOut) return new DeadlineExceededError(`${host}: no answer in time`, { cause: err });
  return new UnavailableError(`${host}: ${(err as Error).message}`, { cause: err });
}
