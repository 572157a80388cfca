// nx run bench:run [-- --quick]: runs Berth's benchmarks and writes
// bench/results/latest.json. Absolute times on shared machines are noisy:
// read the ratios and medians.
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, release } from 'node:os';
import { join, resolve } from 'node:path';
import { benchStoreIngest } from './store-ingest.js';

const quick = process.argv.includes('--quick');
const out = resolve(import.meta.dirname, '../results');

const storeIngest = await benchStoreIngest({ bytes: (quick ? 128 : 1024) * 1024 * 1024, runs: quick ? 3 : 5, workDir: '/var/tmp/berth-bench-ingest' });
const report = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '', kernel: release(), arch: arch(), node: process.version },
  quick,
  storeIngest,
};
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
const mib = storeIngest.bytes / 1024 / 1024;
const line = (name: string, t: { median: number; p90: number; ratio?: number }): string =>
  `  ${name.padEnd(24)} median ${t.median.toFixed(2)} s (p90 ${t.p90.toFixed(2)} s) = ${(mib / t.median).toFixed(0)} MiB/s${t.ratio === undefined ? '' : `, ratio ${t.ratio.toFixed(2)}`}`;
process.stdout.write(
  [
    `store ingest of ${mib} MiB through the internal gRPC API vs cp+sync (${storeIngest.runs} alternating runs each; ratio = cp time / ingest time, target >= 0.7):`,
    line('cp+sync', storeIngest.cpSeconds),
    line('ImportContent', storeIngest.importSeconds),
    line('Ingest, local writes', storeIngest.localWritesSeconds),
    line('Ingest, bytes streamed', storeIngest.streamedSeconds),
    '',
  ].join('\n'),
);
