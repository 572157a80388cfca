import { execFileSync } from 'node:child_process';
import { createPrivateKey, createSign, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '@berth/bus';

export interface TokenServerHandle {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate the registry trusts (rootcertbundle). */
  certPath: string;
  /** Requests the server has answered, with the scope each asked for. */
  requests: Array<{ scope: string; user: string | undefined }>;
  /** A token with the given access, as the server would issue it (for pushing fixtures). */
  mint(repository: string, actions: string[]): string;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * A small bearer-token server for docker-registry's token auth, in the
 * style of the distribution token spec: GET realm?service=…&scope=… with
 * HTTP basic credentials returns {token, expires_in}; the token is an RS256
 * JWT whose x5c header carries a self-signed certificate the registry trusts.
 */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServerHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-subj', '/CN=berth-test-token', '-days', '2'], { stdio: 'ignore' });
  const key: KeyObject = createPrivateKey(readFileSync(keyPath));
  const certDer = new X509Certificate(readFileSync(certPath)).raw;
  const port = await freeLoopbackPort();
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const mint = (repository: string, actions: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub: 'test', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access: repository === '' ? [] : [{ type: 'repository', name: repository, actions }] };
    const body = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${body}.${b64url(createSign('RSA-SHA256').update(body).sign(key))}`;
  };
  const requests: TokenServerHandle['requests'] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    const scope = url.searchParams.get('scope') ?? '';
    let user: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(header.slice(6), 'base64').toString().split(':');
      if (u === undefined || users[u] !== p) {
        res.writeHead(401).end();
        return;
      }
      user = u;
    }
    requests.push({ scope, user });
    // Anonymous callers get a token without access, as real token servers do.
    const m = /^repository:([^:]+):(.+)$/.exec(scope);
    const token = user !== undefined && m !== null ? mint(m[1]!, m[2]!.split(',')) : mint('', []);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    mint,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}
