import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '@berth/bus';
import type { TokenServerHandle } from './token-server.js';

export interface RegistryHandle {
  /** Base URL, e.g. http://127.0.0.1:40123. */
  url: string;
  /** host:port, as it appears in image references. */
  host: string;
  process: ChildProcess;
  /** Where the registry keeps its content. */
  storageDir: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway OCI registry (Debian's docker-registry) on a free
 * loopback port with its storage in a temp dir; resolves once /v2/ answers.
 */
export interface RegistryOptions {
  binary?: string;
  /** Require HTTP basic auth with this user (an htpasswd file made with `htpasswd -B`). */
  basicAuth?: { username: string; password: string };
  /** Require bearer tokens from this token server. */
  tokenAuth?: TokenServerHandle;
  /** Serve the storage of another registry (to offer the same images over another transport). */
  storageDir?: string;
  /** Serve https with this certificate; with clientCa, require client certificates it signed. */
  tls?: { cert: string; key: string; clientCa?: string };
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RegistryHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-registry-'));
  const port = await freeLoopbackPort();
  const config = join(dir, 'config.yml');
  const auth: string[] = [];
  if (options.basicAuth !== undefined) {
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', options.basicAuth.username, options.basicAuth.password], { encoding: 'utf8' }));
    auth.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${htpasswd}`);
  } else if (options.tokenAuth !== undefined) {
    const t = options.tokenAuth;
    auth.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.certPath}`);
  }
  const tls = options.tls === undefined ? [] : ['  tls:', `    certificate: ${options.tls.cert}`, `    key: ${options.tls.key}`, ...(options.tls.clientCa ? ['    clientcas:', `      - ${options.tls.clientCa}`] : [])];
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${options.storageDir ?? join(dir, 'data')}`, '  delete:', '    enabled: true', 'http:', `  addr: 127.0.0.1:${port}`, ...tls, ...auth, ''].join('\n'),
  );
  const binary = options.binary ?? '/usr/bin/docker-registry';
  const child = spawn(binary, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    if (options.tls) {
      // https: wait for the port (the test's own client would need the CA to fetch).
      const open = await new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
      });
      if (open) break;
    } else {
      try {
        const status = (await fetch(`${url}/v2/`)).status;
        if (status === 200 || status === 401) break;
      } catch {
        // not listening yet
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    process: child,
    storageDir: options.storageDir ?? join(dir, 'data'),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
