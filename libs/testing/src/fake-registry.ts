import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { freeLoopbackPort } from '@berth/bus';

export type FakeRoute = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface FakeRegistryHandle {
  url: string;
  host: string;
  /** Requests seen, as "METHOD path [range]". */
  log: string[];
  stop(): Promise<void>;
}

/**
 * An HTTP server that answers the registry API with whatever the test wants:
 * hostile registries (garbage, resets, stalls, confused documents). Routes are
 * tried in order; the first that returns true has answered. /v2/ answers 200.
 */
export async function startFakeRegistry(routes: FakeRoute[]): Promise<FakeRegistryHandle> {
  const port = await freeLoopbackPort();
  const log: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    log.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    void (async () => {
      if (req.url === '/v2/' || req.url === '/v2') {
        res.writeHead(200).end('{}');
        return;
      }
      for (const route of routes) if (await route(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    })();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    log,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
