// What the CRI socket's routing for gRPC-Go clients costs per call
// (libs/rpc/src/authority-relay.ts). Two servers with the same handlers run in
// child processes of their own: one bound by grpc-js itself (as the CRI socket
// was before the routing), one behind the routing listener. Calls alternate
// between them, so both see the same load:
//   - grpc-js clients (`localhost` authority: handed the socket directly),
//     Version and a 50-container ListContainers;
//   - Node's http2 client sending the socket path as `:authority`, as gRPC-Go
//     does (relayed), against the same client sending `localhost`.
// Run: npx nx run bench:socket-routing (-- ROUNDS). Prints medians in ms.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@berth/observability';
import { criV1 } from '@berth/proto';
import { bindUnixSocket, buildService, createClient, createGrpcServer, encodeOnce } from '@berth/rpc';
import { summarize } from './stats.js';

const listSize = 50;

/** The child: serves Version and a kept ListContainers on `path`, routed or not, then says `ready`. */
async function serve(path: string, routed: boolean): Promise<void> {
  const containers = Array.from({ length: listSize }, (_, i) =>
    criV1.Container.fromPartial({ id: `${i}`.padStart(64, 'c'), podSandboxId: 'p'.repeat(64), metadata: { name: `c${i}`, attempt: 0 }, image: { image: 'busybox' }, imageRef: 'sha256:'.padEnd(71, 'a'), state: criV1.ContainerState.CONTAINER_RUNNING, labels: { app: 'bench' } }),
  );
  const list = encodeOnce({ containers });
  const server = createGrpcServer();
  const { definition, implementation } = buildService(
    criV1.RuntimeServiceService,
    {
      version: async () => ({ version: '0.1.0', runtimeName: 'berth', runtimeVersion: 'bench', runtimeApiVersion: 'v1' }),
      listContainers: async () => list,
    },
    { logger: createLogger({ service: 'bench', level: 'silent' }), service: 'bench' },
  );
  server.addService(definition, implementation);
  await bindUnixSocket(server, path, { acceptPathAuthority: routed });
  process.send?.('ready');
}

async function startServer(path: string, routed: boolean): Promise<ChildProcess> {
  const child = fork(import.meta.filename, ['--serve', path, routed ? 'routed' : 'direct'], { stdio: 'inherit' });
  const [message] = (await once(child, 'message')) as [string];
  if (message !== 'ready') throw new Error(`the ${routed ? 'routed' : 'direct'} server did not start`);
  return child;
}

function http2Version(session: ClientHttp2Session, authority: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/runtime.v1.RuntimeService/Version', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('data', () => undefined);
    req.on('end', resolve);
    req.on('error', reject);
    req.end(Buffer.alloc(5));
  });
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await f();
  return performance.now() - start;
}

async function main(rounds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-socket-bench-'));
  const paths = { direct: join(dir, 'direct.sock'), routed: join(dir, 'routed.sock') };
  const children = [await startServer(paths.direct, false), await startServer(paths.routed, true)];
  const clients = { direct: createClient(criV1.RuntimeServiceService, `unix://${paths.direct}`), routed: createClient(criV1.RuntimeServiceService, `unix://${paths.routed}`) };
  const sessions = { path: http2Connect('http://localhost', { createConnection: () => connect(paths.routed) }), localhost: http2Connect('http://localhost', { createConnection: () => connect(paths.routed) }) };
  const calls: Record<string, () => Promise<unknown>> = {
    'Version, grpc-js, bound by grpc-js': () => clients.direct.version({ version: '' }),
    'Version, grpc-js, routed socket': () => clients.routed.version({ version: '' }),
    [`ListContainers (${listSize}), grpc-js, bound by grpc-js`]: () => clients.direct.listContainers({ filter: undefined }),
    [`ListContainers (${listSize}), grpc-js, routed socket`]: () => clients.routed.listContainers({ filter: undefined }),
    'Version, http2 with authority localhost (direct)': () => http2Version(sessions.localhost, 'localhost'),
    'Version, http2 with the socket path as authority (relayed)': () => http2Version(sessions.path, paths.routed),
  };
  const samples = new Map<string, number[]>(Object.keys(calls).map((k) => [k, []]));
  try {
    const entries = Object.entries(calls);
    for (let i = 0; i < rounds + 200; i++) {
      // Each round in the other order, so that neither side always follows the other.
      for (const [name, call] of i % 2 === 0 ? entries : [...entries].reverse()) {
        const ms = await timed(call);
        if (i >= 200) samples.get(name)!.push(ms); // the first 200 rounds warm up
      }
    }
    for (const [name, s] of samples) {
      const { median, p90 } = summarize(s);
      process.stdout.write(`${name.padEnd(62)} median ${median.toFixed(3)} ms  p90 ${p90.toFixed(3)} ms\n`);
    }
  } finally {
    Object.values(clients).forEach((c) => c.close());
    Object.values(sessions).forEach((s) => s.destroy());
    children.forEach((c) => c.kill());
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3]!, process.argv[4] === 'routed');
else await main(Number(process.argv[2] ?? 2000));
