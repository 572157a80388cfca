import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { natsLogin, readBusCredentials, subjects, type BusCredentials, type EventEnvelope, type PullProgress } from '@berth/bus';

export interface ProgressWatcher {
  stop(): Promise<void>;
}

/** The bus URL berthd wrote next to the CRI socket (its run dir), or $BERTH_NATS__URL. */
export function natsUrlFor(socket: string): string | undefined {
  if (process.env['BERTH_NATS__URL']) return process.env['BERTH_NATS__URL'];
  try {
    return readFileSync(join(dirname(socket.replace(/^unix:\/\//, '')), 'nats.url'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * berthctl's login to berthd's own bus (`bus/berthctl.json` in its run dir, readable by root
 * only; it may only listen to pull progress), or $BERTH_NATS__CREDENTIALS; none when absent.
 */
export function natsCredentialsFor(socket: string): BusCredentials | undefined {
  const path = process.env['BERTH_NATS__CREDENTIALS'] || join(dirname(socket.replace(/^unix:\/\//, '')), 'bus', 'berthctl.json');
  try {
    return readBusCredentials(path);
  } catch {
    return undefined;
  }
}

const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);
const mb = (n: number): string => `${(n / 1e6).toFixed(1)}MB`;

function bar(p: PullProgress, width = 30): string {
  const fraction = p.total > 0 ? Math.min(1, p.bytes / p.total) : 0;
  const filled = Math.round(fraction * width);
  return `${short(p.layer)}: ${p.phase.padEnd(11)} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${mb(p.bytes)}/${mb(p.total)}`;
}

/**
 * Shows a pull's per-layer progress from the image service's events: bars
 * redrawn in place on a terminal, one line per phase change otherwise.
 * Progress is best effort: without the bus, the pull goes on silently.
 */
export async function watchPullProgress(natsUrl: string | undefined, image: string, err: NodeJS.WriteStream, credentials?: BusCredentials): Promise<ProgressWatcher> {
  if (natsUrl === undefined) return { stop: async () => undefined };
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: natsUrl, timeout: 1000, name: 'berthctl', ...natsLogin(credentials) });
  } catch {
    return { stop: async () => undefined };
  }
  const layers = new Map<string, PullProgress>();
  let drawn = 0;
  const draw = (): void => {
    if (err.isTTY) {
      if (drawn > 0) err.write(`\x1b[${drawn}A`);
      for (const p of layers.values()) err.write(`\x1b[2K${bar(p)}\n`);
      drawn = layers.size;
    }
  };
  const sub = nc.subscribe(subjects.pullProgress.subject, {
    callback: (_e, msg) => {
      const event = msg.json<EventEnvelope<PullProgress>>().payload;
      if (event.image !== image) return;
      const before = layers.get(event.layer);
      layers.set(event.layer, event);
      if (err.isTTY) draw();
      else if (before?.phase !== event.phase && event.phase !== 'downloading') err.write(`${short(event.layer)}: ${event.phase} ${mb(event.total)}\n`);
    },
  });
  await nc.flush();
  return {
    async stop() {
      await nc.flush().catch(() => undefined);
      sub.unsubscribe();
      await nc.close();
    },
  };
}
