// Store ingest throughput: a blob written through the store service's
// internal gRPC API (the real berth-store process, as the image service
// uses it) against `cp` of the same file plus `sync` on the same disk.
// Runs alternate (cp, ingest, cp, ingest, ...) so machine drift cancels out.
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNatsServer } from '@berth/bus';
import { RemoteStore } from '@berth/store-api';
import { summarize } from './stats.js';

const repoRoot = resolve(import.meta.dirname, '../..');

export interface IngestResult {
  bytes: number;
  runs: number;
  cpSeconds: { median: number; p90: number };
  ingestSeconds: { median: number; p90: number };
  /** ingest throughput / cp throughput: 1.0 is as fast as cp. */
  ratio: number;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export async function benchStoreIngest(options: { bytes: number; runs: number; workDir: string }): Promise<IngestResult> {
  const work = options.workDir;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const source = join(work, 'source.bin');
  execFileSync('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${Math.round(options.bytes / (1024 * 1024))}`, 'status=none']);
  const digest = await sha256File(source);
  const nats = await startNatsServer();
  const state = join(work, 'state');
  const config = join(work, 'config.toml');
  writeFileSync(config, [`stateDir = "${state}"`, `runDir = "${work}/run"`, '[observability.ports]', 'store = 0', ''].join('\n'));
  // BENCH_CPU_PROF=<dir> writes a CPU profile of the store process there.
  const profile = process.env['BENCH_CPU_PROF'];
  const store = spawn(process.execPath, [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []), join(repoRoot, 'apps/store/dist/main.js')], {
    env: { ...process.env, BERTH_CONFIG: config, BERTH_NATS__URL: nats.url, OTEL_SDK_DISABLED: 'true', BERTH_OBSERVABILITY__LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const socket = join(work, 'run/internal/store.sock');
  for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(50);
  const client = new RemoteStore(`unix://${socket}`, { timeoutMs: 600_000 });
  const cp: number[] = [];
  const ingest: number[] = [];
  try {
    for (let run = 0; run < options.runs; run++) {
      const target = join(work, 'copy.bin');
      execFileSync('sync');
      let t = performance.now();
      execFileSync('cp', [source, target]);
      execFileSync('sync', [target]);
      cp.push((performance.now() - t) / 1000);
      rmSync(target);

      execFileSync('sync');
      t = performance.now();
      const w = await client.content.writer({ ref: `bench-${run}`, expectedDigest: digest, expectedSize: options.bytes });
      for await (const chunk of createReadStream(source, { highWaterMark: 1024 * 1024 })) await w.write(chunk as Buffer);
      await w.commit();
      ingest.push((performance.now() - t) / 1000);
      await client.content.delete(digest);
    }
  } finally {
    await client.close();
    store.kill('SIGTERM');
    await new Promise((r) => store.once('exit', r));
    await nats.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const c = summarize(cp);
  const g = summarize(ingest);
  return { bytes: options.bytes, runs: options.runs, cpSeconds: { median: c.median, p90: c.p90 }, ingestSeconds: { median: g.median, p90: g.p90 }, ratio: c.median / g.median };
}
