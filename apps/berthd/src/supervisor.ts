import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@berth/observability';

export interface ChildSpec {
  /** Name in logs and in the pid file, e.g. `store` or `image-1`. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** Restart delays: 0.5 s doubling to 30 s; back to 0.5 s once a child has run for a minute. */
const firstDelayMs = 500;
const maxDelayMs = 30_000;
const stableAfterMs = 60_000;

/**
 * Keeps a set of child processes running: one that exits while the
 * supervisor is not stopping is started again after a back-off. Each child's
 * pid is written to `<pidDir>/<name>.pid` so operators and tests can find it.
 */
export class Supervisor {
  private readonly children = new Map<string, { spec: ChildSpec; process?: ChildProcess; delay: number; startedAt: number; restarts: number; timer?: NodeJS.Timeout }>();
  private stopping = false;

  constructor(
    private readonly pidDir: string,
    private readonly logger: Logger,
  ) {
    mkdirSync(pidDir, { recursive: true, mode: 0o700 });
  }

  add(spec: ChildSpec): void {
    this.children.set(spec.name, { spec, delay: firstDelayMs, startedAt: 0, restarts: 0 });
    this.start(spec.name);
  }

  private start(name: string): void {
    const entry = this.children.get(name);
    if (entry === undefined || this.stopping) return;
    const child = spawn(entry.spec.command, entry.spec.args, { env: entry.spec.env, stdio: ['ignore', 'inherit', 'inherit'] });
    entry.process = child;
    entry.startedAt = Date.now();
    if (child.pid !== undefined) writeFileSync(join(this.pidDir, `${name}.pid`), `${child.pid}\n`);
    child.once('error', (err) => this.logger.error({ err, child: name }, 'could not start child'));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      const ranFor = Date.now() - entry.startedAt;
      if (ranFor > stableAfterMs) entry.delay = firstDelayMs;
      entry.restarts += 1;
      this.logger.warn({ child: name, code, signal, restartInMs: entry.delay, restarts: entry.restarts }, 'child exited; restarting');
      entry.timer = setTimeout(() => this.start(name), entry.delay);
      entry.delay = Math.min(entry.delay * 2, maxDelayMs);
    });
  }

  /** SIGTERM to every child, SIGKILL to those still there after `graceMs`; resolves when all have exited. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const [name, entry] of this.children) {
      if (entry.timer) clearTimeout(entry.timer);
      const child = entry.process;
      rmSync(join(this.pidDir, `${name}.pid`), { force: true });
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
      );
    }
    await Promise.all(waits);
  }
}
