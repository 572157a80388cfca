import { loadConfig, type BerthConfig, type ServiceName } from '@berth/config';
import { Bus, readBusCredentials, subjects } from '@berth/bus';
import { createLogger, initTelemetry, startHealthServer, type CheckResult, type Logger, type Telemetry } from '@berth/observability';
import { berthVersion } from '@berth/config';
import { mallocTrim } from '@berth/native';

/** What a service's composition root is handed. */
export interface DaemonContext {
  service: ServiceName;
  config: BerthConfig;
  logger: Logger;
  telemetry: Telemetry;
  bus: Bus;
  version: string;
  /** Registers a cleanup step; steps run in reverse order on shutdown. */
  onShutdown(step: () => Promise<void> | void): void;
}

export interface DaemonSpec {
  service: ServiceName;
  /**
   * Wires the service and starts serving. Returns the readiness checks for
   * /readyz (the bus connection is always checked too).
   */
  start(ctx: DaemonContext): Promise<() => Promise<Record<string, CheckResult>>>;
}

/**
 * A service started by berthd stops when berthd is gone (killed with
 * SIGKILL, say): otherwise it would run on orphaned, reconnecting to a NATS
 * server that died with berthd. Containers are not affected: they run under
 * their conmon. Checked every second, by whether this process's parent is
 * still berthd.
 */
function watchSupervisor(gone: () => void): void {
  const supervisor = Number(process.env['BERTHD_PID'] ?? '');
  if (!Number.isInteger(supervisor) || supervisor <= 0 || process.ppid !== supervisor) return;
  setInterval(() => {
    if (process.ppid !== supervisor) gone();
  }, 1000).unref();
}

/**
 * Runs one Berth service process: configuration, logging, telemetry, the NATS
 * connection, the health endpoint and orderly shutdown on SIGTERM/SIGINT are
 * the same for every service; `spec.start` is the service's own wiring.
 * Any failure to start exits the process with status 1 and a logged reason.
 */
export async function runDaemon(spec: DaemonSpec): Promise<void> {
  let logger: Logger = createLogger({ service: spec.service });
  const steps: Array<() => Promise<void> | void> = [];
  let stopping = false;
  const shutdown = async (reason: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'shutting down');
    for (const step of steps.reverse()) {
      try {
        await step();
      } catch (err) {
        logger.warn({ err }, 'shutdown step failed');
      }
    }
    process.exit(code);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.once('SIGINT', () => void shutdown('SIGINT', 0));
  watchSupervisor(() => void shutdown('berthd is gone', 0));
  try {
    const config = loadConfig();
    logger = createLogger({ service: spec.service, level: config.observability.logLevel });
    const telemetry = await initTelemetry({
      service: spec.service,
      version: berthVersion,
      tracesExporter: config.observability.tracesExporter,
      otlpEndpoint: config.observability.otlpEndpoint,
    });
    steps.push(() => telemetry.shutdown());
    if (config.nats.url === '') throw new Error('nats.url is empty: start services through berthd, or set BERTH_NATS__URL');
    const credentials = config.nats.credentials === '' ? {} : { credentials: readBusCredentials(config.nats.credentials) };
    const bus = await Bus.connect({ url: config.nats.url, name: `berth-${spec.service}-${process.pid}`, logger, ...credentials });
    steps.push(() => bus.close());
    const ctx: DaemonContext = { service: spec.service, config, logger, telemetry, bus, version: berthVersion, onShutdown: (s) => void steps.push(s) };
    const readiness = await spec.start(ctx);
    const health = await startHealthServer({
      host: config.observability.host,
      port: config.observability.ports[spec.service],
      prometheus: telemetry.prometheus,
      readiness: async () => ({ nats: bus.connected ? { ok: true } : { ok: false, message: 'disconnected from NATS' }, ...(await readiness()) }),
    });
    steps.push(() => health.app.close());
    bus.publish(subjects.serviceStarted, { service: spec.service, version: berthVersion, pid: process.pid });
    logger.info({ version: berthVersion, healthPort: health.port }, `berth-${spec.service} started`);
    // Start-up's garbage (compiled WebAssembly, module loading on helper threads) sits free but
    // resident in malloc's arenas: handed back once serving, again when the work that runs
    // behind start-up (a first collection, reconciling) is done, then once a minute.
    mallocTrim();
    setTimeout(() => mallocTrim(), 10_000).unref();
    setInterval(() => mallocTrim(), 60_000).unref();
  } catch (err) {
    logger.fatal({ err }, `berth-${spec.service} failed to start`);
    await shutdown('start-up failed', 1);
  }
}
