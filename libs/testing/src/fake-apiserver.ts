import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { CriClient } from '@berth/client';
import { categoryOf } from '@berth/errors';
import { freeLoopbackPort } from '@berth/bus';
import { kubectlBinary, kubectlResult, spawnKubectl, type KubectlOptions, type KubectlResult } from './kubectl.js';

export interface FakePodContainer {
  name: string;
  /** The CRI container id exec and attach go to. */
  id: string;
  image?: string;
  /** As the pod spec's tty and stdin, which kubectl attach looks at. */
  tty?: boolean;
  stdin?: boolean;
}

export interface FakePod {
  /** Default "default", kubectl's namespace without a kubeconfig. */
  namespace?: string;
  name: string;
  /** The CRI sandbox port-forward goes to. */
  podSandboxId: string;
  containers: FakePodContainer[];
  /** status.phase; default Running (kubectl refuses exec into a completed pod). */
  phase?: string;
}

type Runtime = CriClient['runtime'];

/** A CRI streaming call the fake server made, with the request exactly as sent. */
export type StreamCall =
  | { method: 'exec'; request: Parameters<Runtime['exec']>[0] }
  | { method: 'attach'; request: Parameters<Runtime['attach']>[0] }
  | { method: 'portForward'; request: Parameters<Runtime['portForward']>[0] };

export interface FakeApiServerHandle {
  url: string;
  /** Requests seen, as "METHOD path?query" (upgrades as "UPGRADE METHOD path?query"). */
  log: string[];
  /** The headers of each upgrade request, in order (what kubectl sent, before the proxy's changes). */
  upgrades: Array<{ url: string; headers: IncomingMessage['headers'] }>;
  /** The CRI calls made for exec, attach and port-forward, in order. */
  calls: StreamCall[];
  addPod(pod: FakePod): void;
  /** kubectl with the flags that point it at this server (no kubeconfig, a private cache), then `args`. */
  kubectlCommand(args: string[]): string[];
  /** Runs kubectl to its end. */
  kubectl(args: string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Starts kubectl with piped stdio, for exchanges (attach, port-forward) the test drives; stop() kills it. */
  spawnKubectl(args: string[], options?: KubectlOptions): ChildProcess;
  /** Closes the server, every proxied connection and every kubectl still running. */
  stop(): Promise<void>;
}

type Subresource = 'exec' | 'attach' | 'portforward';

/** A metav1.Status, which kubectl prints the message of (for an upgrade too). */
interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
}

const reasons: Record<number, string> = { 400: 'BadRequest', 404: 'NotFound', 405: 'MethodNotAllowed', 429: 'TooManyRequests', 500: 'InternalError' };

function failure(code: number, message: string): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: reasons[code] ?? 'Unknown', code };
}

class HttpFailure extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
}

/** What the kubelet's streaming.WriteError answers for a failed CRI call: 404, 429 or 500. */
function criFailure(err: unknown): Status {
  const message = err instanceof Error ? err.message : String(err);
  const category = categoryOf(err);
  return failure(category === 'not-found' ? 404 : category === 'resource-exhausted' ? 429 : 500, message);
}

/** Discovery that says there is one group, the core v1, with pods and their streaming subresources. */
const apiResources = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: 'v1',
  resources: [
    { name: 'pods', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'], categories: ['all'] },
    { name: 'pods/attach', singularName: '', namespaced: true, kind: 'PodAttachOptions', verbs: ['create', 'get'] },
    { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
    { name: 'pods/portforward', singularName: '', namespaced: true, kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
  ],
};

const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** The Pod as the API would show it: running, every container ready and started. */
function podJson(pod: FakePod): unknown {
  const namespace = pod.namespace ?? 'default';
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { name: pod.name, namespace, uid: `uid-${namespace}-${pod.name}`, resourceVersion: '1', creationTimestamp: created },
    spec: {
      nodeName: 'berth-node',
      containers: pod.containers.map((c) => ({ name: c.name, image: c.image ?? 'busybox', stdin: c.stdin ?? false, tty: c.tty ?? false })),
    },
    status: {
      phase: pod.phase ?? 'Running',
      podIP: '10.88.0.2',
      startTime: created,
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: pod.containers.map((c) => ({
        name: c.name,
        ready: true,
        started: true,
        restartCount: 0,
        image: c.image ?? 'busybox',
        imageID: '',
        containerID: `berth://${c.id}`,
        state: { running: { startedAt: created } },
      })),
    },
  };
}

/** A query flag as the apiserver reads it ("true") or as it passes it on to the kubelet ("1"). */
function flag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  return value === 'true' || value === '1';
}

/** The pod's container named by `container`, or its first, as exec and attach go to. */
function containerOf(pod: FakePod, query: URLSearchParams): FakePodContainer {
  const name = query.get('container');
  const container = name === null || name === '' ? pod.containers[0] : pod.containers.find((c) => c.name === name);
  if (container === undefined) throw new HttpFailure(failure(400, `container ${name ?? ''} is not valid for pod ${pod.name}`));
  return container;
}

/**
 * The kubelet's stream options (remotecommand NewOptions): at least one
 * stream, and no stderr with a tty, where it goes to stdout.
 */
function streamOptions(query: URLSearchParams): { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean } {
  const tty = flag(query, 'tty');
  const options = { stdin: flag(query, 'stdin'), stdout: flag(query, 'stdout'), stderr: flag(query, 'stderr') && !tty, tty };
  if (!options.stdin && !options.stdout && !flag(query, 'stderr')) throw new HttpFailure(failure(400, 'you must specify at least 1 of stdin, stdout, stderr'));
  return options;
}

/** The CRI call the kubelet makes for a streaming subresource of `pod`, recorded in `calls`. */
async function streamingUrl(cri: CriClient, calls: StreamCall[], pod: FakePod, subresource: Subresource, query: URLSearchParams): Promise<string> {
  if (subresource === 'portforward') {
    // SPDY clients name the ports in stream headers, so the kubelet passes
    // the ports of the query (WebSocket clients') or none.
    const request = { podSandboxId: pod.podSandboxId, port: query.getAll('ports').flatMap((p) => p.split(',')).map(Number) };
    calls.push({ method: 'portForward', request });
    return (await cri.runtime.portForward(request)).url;
  }
  const containerId = containerOf(pod, query).id;
  const options = streamOptions(query);
  if (subresource === 'attach') {
    const request = { containerId, ...options };
    calls.push({ method: 'attach', request });
    return (await cri.runtime.attach(request)).url;
  }
  const cmd = query.getAll('command');
  if (cmd.length === 0) throw new HttpFailure(failure(400, 'you must specify at least one command for the container'));
  const request = { containerId, cmd, ...options };
  calls.push({ method: 'exec', request });
  return (await cri.runtime.exec(request)).url;
}

/**
 * The upgrade request as the kubelet's proxy sends it on: the streaming URL's
 * path and query (the client's query is not passed on), the client's headers
 * with the streaming server as Host, and X-Forwarded-For.
 */
function forwardedHead(req: IncomingMessage, target: URL): string {
  const lines = [`${req.method ?? 'POST'} ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (name.toLowerCase() !== 'host' && name.toLowerCase() !== 'x-forwarded-for') lines.push(`${name}: ${raw[i + 1] ?? ''}`);
  }
  const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter((v) => v !== undefined).join(', ');
  if (forwardedFor !== '') lines.push(`X-Forwarded-For: ${forwardedFor}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * Pipes the two connections both ways, as the kubelet's proxy does: when
 * either side ends, what it sent is delivered and then both are closed.
 */
function splice(a: Duplex, b: Duplex): void {
  const closeBoth = (): void => {
    a.destroy();
    b.destroy();
  };
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    from.pipe(to, { end: false });
    from.once('end', () => to.end(closeBoth));
    from.once('error', closeBoth);
    from.once('close', () => {
      if (!from.readableEnded) closeBoth();
    });
  }
}

/** Writes a Status as a whole HTTP response on a raw (upgrade) connection, then closes it. */
function writeRawStatus(socket: Duplex, status: Status): void {
  const body = JSON.stringify(status);
  socket.end(`HTTP/1.1 ${status.code} ${reasons[status.code] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

function writeJson(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Connects to the streaming server, rejecting (as a 500 Status) if it cannot be reached. */
function dial(target: URL, sockets: Set<Socket>): Promise<Socket> {
  return new Promise((resolvePromise, reject) => {
    const backend = connect({ host: target.hostname, port: Number(target.port || (target.protocol === 'https:' ? 443 : 80)) });
    sockets.add(backend);
    backend.once('close', () => sockets.delete(backend));
    backend.once('connect', () => resolvePromise(backend));
    backend.once('error', (err) => reject(new HttpFailure(failure(500, `error dialing backend: ${err.message}`))));
  });
}

/** Path of a pod or of one of its streaming subresources. */
const podPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(?:\/(exec|attach|portforward))?$/;

/**
 * A fake Kubernetes API server and kubelet in one, for driving Berth's
 * streaming server with a real kubectl: it answers the discovery and the
 * pods kubectl asks about, and for exec, attach and port-forward it does
 * what the kubelet does: asks the CRI for a streaming URL and proxies the
 * client's SPDY (or WebSocket) upgrade to it byte for byte. A failed CRI call
 * answers a Status, whose message kubectl prints.
 */
export async function startFakeApiServer(cri: CriClient): Promise<FakeApiServerHandle> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const pods = new Map<string, FakePod>();
  const log: string[] = [];
  const upgrades: FakeApiServerHandle['upgrades'] = [];
  const calls: StreamCall[] = [];
  const sockets = new Set<Socket>();
  const children = new Set<ChildProcess>();
  // kubectl caches discovery per server address; ports are reused, so each server has its own cache.
  const dir = mkdtempSync('/tmp/berth-kubectl-');

  const findPod = (namespace: string, name: string): FakePod => {
    const pod = pods.get(`${namespace}/${name}`);
    if (pod === undefined) throw new HttpFailure(failure(404, `pods "${name}" not found`));
    return pod;
  };

  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const { pathname } = new URL(req.url ?? '/', url);
    log.push(`${req.method} ${req.url}`);
    if (pathname === '/api') return writeJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] });
    if (pathname === '/apis') return writeJson(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
    if (pathname === '/api/v1') return writeJson(res, 200, apiResources);
    if (pathname === '/version') return writeJson(res, 200, { major: '1', minor: '20', gitVersion: 'v1.20.2', platform: 'linux/amd64' });
    const list = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?pods$/.exec(pathname);
    if (list !== null && req.method === 'GET') {
      const items = [...pods.values()].filter((p) => list[1] === undefined || (p.namespace ?? 'default') === list[1]).map(podJson);
      return writeJson(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items });
    }
    const match = podPath.exec(pathname);
    try {
      if (match === null) throw new HttpFailure(failure(404, 'the server could not find the requested resource'));
      const pod = findPod(match[1] ?? '', match[2] ?? '');
      // The streaming subresources are upgrades only (see 'upgrade' below).
      if (match[3] !== undefined) throw new HttpFailure(failure(400, 'Upgrade request required'));
      if (req.method !== 'GET') throw new HttpFailure(failure(405, 'the server does not allow this method on the requested resource'));
      writeJson(res, 200, podJson(pod));
    } catch (err) {
      const status = err instanceof HttpFailure ? err.status : failure(500, String(err));
      writeJson(res, status.code, status);
    }
  };

  const upgrade = async (req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> => {
    const { pathname, searchParams } = new URL(req.url ?? '/', url);
    log.push(`UPGRADE ${req.method} ${req.url}`);
    upgrades.push({ url: req.url ?? '/', headers: req.headers });
    // A client that hangs up while the CRI answers must not crash the test.
    client.on('error', () => client.destroy());
    try {
      const match = podPath.exec(pathname);
      if (match?.[3] === undefined) throw new HttpFailure(failure(404, 'the server could not find the requested resource'));
      const pod = findPod(match[1] ?? '', match[2] ?? '');
      const target = new URL(await streamingUrl(cri, calls, pod, match[3] as Subresource, searchParams).catch((err: unknown) => {
        throw err instanceof HttpFailure ? err : new HttpFailure(criFailure(err));
      }));
      const backend = await dial(target, sockets);
      if (client.destroyed) {
        backend.destroy();
        return;
      }
      backend.write(forwardedHead(req, target));
      if (head.length > 0) backend.write(head);
      splice(client, backend);
    } catch (err) {
      writeRawStatus(client, err instanceof HttpFailure ? err.status : failure(500, String(err)));
    }
  };

  const server: Server = createServer(answer);
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) => void upgrade(req, client, head));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));

  const kubectlCommand = (args: string[]): string[] => [kubectlBinary(), '--kubeconfig', '/dev/null', '--server', url, '--cache-dir', join(dir, 'cache'), ...args];
  const track = (child: ChildProcess): ChildProcess => {
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  return {
    url,
    log,
    upgrades,
    calls,
    addPod: (pod) => void pods.set(`${pod.namespace ?? 'default'}/${pod.name}`, pod),
    kubectlCommand,
    kubectl: (args, options) => kubectlResult(track(spawnKubectl(kubectlCommand(args), options)), options),
    spawnKubectl: (args, options) => track(spawnKubectl(kubectlCommand(args), options)),
    async stop() {
      await Promise.all(
        [...children].map(async (child) => {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGKILL');
          await exited;
        }),
      );
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
