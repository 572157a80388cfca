// berthd: runs a whole Berth node stack as one command. It starts
// nats-server (unless one is configured), then the store, executor, image
// (N replicas) and CRI services, restarts any that exit, prints the CRI
// socket once it answers, and stops everything on SIGTERM or Ctrl-C.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { startNatsServer, writeBusAuth, type BusAuthFiles, type NatsServerHandle } from '@berth/bus';
import { ensurePrivateDir, loadConfig, type BerthConfig } from '@berth/config';
import { berthVersion } from '@berth/config';
// The logger alone: berthd exports no telemetry, so the OpenTelemetry SDK stays unloaded (about 25 MiB).
import { createLogger } from '@berth/observability/logger';
import { criV1 } from '@berth/proto';
import { createClient, socketIsLive } from '@berth/rpc';
import { Supervisor } from './supervisor.js';

const appsDir = join(import.meta.dirname, '../..');

async function waitForCri(socket: string, timeoutMs: number): Promise<void> {
  const client = createClient(criV1.RuntimeServiceService, `unix://${socket}`, { timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        // Serving means every service answers, not only the CRI frontend.
        const status = await client.status({ verbose: false });
        const ready = status.status?.conditions.find((c) => c.type === 'RuntimeReady');
        if (ready?.status === true) return;
        if (Date.now() > deadline) throw new Error(`the runtime is not ready: ${ready?.message ?? 'no RuntimeReady condition'}`);
        await new Promise((r) => setTimeout(r, 100));
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.close();
  }
}

/**
 * The state and run dirs, refused when others could change them, created (or
 * narrowed) 0700: nothing in them is for other users. The directories from the
 * run dir down to the CRI socket, when it lies there, are 0710 with the
 * socket's group, so that group can reach the socket (0660) and nothing else.
 */
function prepareDirs(config: BerthConfig): void {
  ensurePrivateDir(config.stateDir);
  ensurePrivateDir(config.runDir);
  const socketDir = dirname(config.socket);
  const below = relative(config.runDir, socketDir);
  if (!below.startsWith('..') && !isAbsolute(below)) {
    let dir = config.runDir;
    for (const part of ['', ...below.split(sep).filter((p) => p !== '')]) {
      dir = join(dir, part);
      ensurePrivateDir(dir, 0o710);
      chmodSync(dir, 0o710);
      chownSync(dir, process.getuid?.() ?? 0, config.socketGid);
    }
  }
  mkdirSync(join(config.runDir, 'internal'), { recursive: true, mode: 0o700 });
}

async function main(): Promise<void> {
  let logger = createLogger({ service: 'berthd' });
  const config = loadConfig();
  logger = createLogger({ service: 'berthd', level: config.observability.logLevel });
  if (await socketIsLive(config.socket)) {
    logger.fatal({ socket: config.socket }, 'another Berth is already serving on the CRI socket');
    process.stderr.write(`berthd: another Berth is already serving on ${config.socket}; not starting\n`);
    process.exit(1);
  }
  prepareDirs(config);

  let nats: NatsServerHandle | undefined;
  // Berth's own nats-server admits only Berth's services, each with a password made at this start
  // and the permissions of its role (busPermissions); the secrets reach it in a file, not in argv.
  let busAuth: BusAuthFiles | undefined;
  // Each service watches this pid and stops when berthd is gone (see runDaemon). Two malloc
  // arenas, not glibc's eight per core: a Node service's native allocations are few, and
  // each arena keeps its own freed memory resident (about 40 MiB less for the store).
  const env: NodeJS.ProcessEnv = { MALLOC_ARENA_MAX: '2', ...process.env, BERTHD_PID: String(process.pid) };
  if (config.nats.url === '') {
    busAuth = writeBusAuth(join(config.runDir, 'bus'));
    nats = await startNatsServer({ binary: config.nats.binary, port: config.nats.port, configFile: busAuth.configFile, dieWithParent: true });
    env['BERTH_NATS__URL'] = nats.url;
    logger.info({ url: nats.url }, 'nats-server started');
    // Where local tools (berthctl pull's progress) find the bus.
    writeFileSync(join(config.runDir, 'nats.url'), `${nats.url}\n`, { mode: 0o600 });
  }

  const supervisor = new Supervisor(join(config.runDir, 'pids'), logger);
  // V8's young generation grows to 16 MiB semi-spaces under load and stays resident; the services
  // that allocate little per request keep it at 1 MiB (17-20 MiB less resident each). The image
  // service, which allocates per chunk of every download, keeps V8's default.
  const smallYoungGeneration = ['--max-semi-space-size=1'];
  const service = (name: string, app: 'store' | 'executor' | 'image' | 'cri', extraEnv: NodeJS.ProcessEnv = {}, nodeArgs: string[] = smallYoungGeneration) => {
    const credentials = busAuth === undefined ? {} : { BERTH_NATS__CREDENTIALS: busAuth.credentialsFile(app) };
    supervisor.add({ name, command: process.execPath, args: [...nodeArgs, join(appsDir, app, 'dist/main.js')], env: { ...env, ...credentials, ...extraEnv } });
  };
  service('store', 'store');
  service('executor', 'executor');
  for (let i = 0; i < config.image.replicas; i++) service(i === 0 ? 'image' : `image-${i}`, 'image', i === 0 ? {} : { BERTH_OBSERVABILITY__PORTS__IMAGE: '0' }, []);
  service('cri', 'cri');

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping the Berth stack');
    await supervisor.stop();
    await nats?.stop();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // nats-server is restarted on the same port; the services reconnect by themselves.
  const watchNats = (handle: NatsServerHandle): void => {
    handle.process.once('exit', (code, signal) => {
      if (stopping) return;
      logger.warn({ code, signal }, 'nats-server exited; restarting it');
      const restart = async (delay: number): Promise<void> => {
        await new Promise((r) => setTimeout(r, delay));
        if (stopping) return;
        try {
          nats = await startNatsServer({ binary: config.nats.binary, port: handle.port, ...(busAuth === undefined ? {} : { configFile: busAuth.configFile }) });
          watchNats(nats);
        } catch (err) {
          logger.error({ err }, 'nats-server restart failed');
          await restart(Math.min(delay * 2, 30_000));
        }
      };
      void restart(500);
    });
  };
  if (nats !== undefined) watchNats(nats);

  await waitForCri(config.socket, 60_000);
  logger.info({ socket: config.socket, version: berthVersion }, 'berth is serving the CRI');
  process.stdout.write(`berth ${berthVersion} is serving the CRI on unix://${config.socket}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`berthd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
