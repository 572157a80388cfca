// Store ingest throughput through the store service's internal gRPC API
// (the real berth-store process) against `cp` of the same file plus `sync`
// on the same disk, three ways: ImportContent of the file (the store copies
// it in the kernel and hashes the copy while it syncs), an ingest with local
// writes (the image service's path: the client writes the store's data file,
// the store hashes what it reports), and an ingest with the bytes streamed
// over the socket. Runs alternate (cp, import, local, streamed, cp, ...) so
// machine drift cancels out.
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNatsServer } from '@berth/bus';
import { RemoteStore } from '@berth/store-api';
import { summarize } from './stats.js';

const repoRoot = resolve(import.meta.dirname, '../..');

interface Timing {
  median: number;
  p90: number;
  /** cp throughput / this: 1.0 is as fast as cp. */
  ratio: number;
}

export interface IngestResult {
  bytes: number;
  runs: number;
  cpSeconds: { median: number; p90: number };
  /** ImportContent: the store copies the file in the kernel and verifies the copy. */
  importSeconds: Timing;
  /** Ingest with local writes: the client writes the store's data file, the store hashes it (the image service's path). */
  localWritesSeconds: Timing;
  /** Ingest with the bytes streamed over the socket (a client that cannot open the store's files). */
  streamedSeconds: Timing;
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
  const streaming = new RemoteStore(`unix://${socket}`, { timeoutMs: 600_000, localWrites: false });
  const cp: number[] = [];
  const ingest: number[] = [];
  const streamed: number[] = [];
  const imported: number[] = [];
  const timeImport = async (ref: string): Promise<number> => {
    execFileSync('sync');
    const t = performance.now();
    await client.content.importFile(source, { ref, expectedDigest: digest, expectedSize: options.bytes });
    const seconds = (performance.now() - t) / 1000;
    await client.content.delete(digest);
    return seconds;
  };
  const timeIngest = async (store: RemoteStore, ref: string): Promise<number> => {
    execFileSync('sync');
    const t = performance.now();
    const w = await store.content.writer({ ref, expectedDigest: digest, expectedSize: options.bytes });
    for await (const chunk of createReadStream(source, { highWaterMark: 1024 * 1024 })) await w.write(chunk as Buffer);
    await w.commit();
    const seconds = (performance.now() - t) / 1000;
    await store.content.delete(digest);
    return seconds;
  };
  try {
    for (let run = 0; run < options.runs; run++) {
      const target = join(work, 'copy.bin');
      execFileSync('sync');
      const t = performance.now();
      execFileSync('cp', [source, target]);
      execFileSync('sync', [target]);
      cp.push((performance.now() - t) / 1000);
      rmSync(target);

      imported.push(await timeImport(`bench-import-${run}`));
      ingest.push(await timeIngest(client, `bench-${run}`));
      streamed.push(await timeIngest(streaming, `bench-streamed-${run}`));
    }
  } finally {
    await client.close();
    await streaming.close();
    store.kill('SIGTERM');
    await new Promise((r) => store.once('exit', r));
    await nats.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const c = summarize(cp);
  const timing = (samples: number[]): Timing => {
    const s = summarize(samples);
    return { median: s.median, p90: s.p90, ratio: c.median / s.median };
  };
  return {
    bytes: options.bytes,
    runs: options.runs,
    cpSeconds: { median: c.median, p90: c.p90 },
    importSeconds: timing(imported),
    localWritesSeconds: timing(ingest),
    streamedSeconds: timing(streamed),
  };
}
