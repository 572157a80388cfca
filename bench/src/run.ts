// nx run bench:run [-- --quick] [-- --only store|cri] [-- --render]: runs
// Berth's benchmarks, writes bench/results/latest.json and a Markdown report
// with its plot (docs/ after a full run; bench/results/ after a quick or
// partial one); --render re-renders the last run's report. Absolute times on
// shared machines are noisy: read the medians and the ratios.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { benchCri, versionCall } from './cri-bench.js';
import { latencyPlot } from './plot.js';
import { benchStoreIngest, type IngestResult } from './store-ingest.js';

const quick = process.argv.includes('--quick');
const render = process.argv.includes('--render');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
const root = resolve(import.meta.dirname, '../..');
const out = join(root, 'bench/results');

const version = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]?.trim() ?? '';
  } catch {
    return 'not installed';
  }
};

const machine = {
  cpus: cpus().length,
  model: cpus()[0]?.model ?? '',
  memoryGiB: Math.round(totalmem() / 1024 ** 3),
  kernel: release(),
  arch: arch(),
  node: process.version,
  runc: version('runc', ['--version']),
  conmon: version('conmon', ['--version']),
  containerd: version('containerd', ['--version']),
};
type Report = { date: string; machine: typeof machine; quick: boolean; seconds: number; storeIngest: IngestResult | undefined; cri: Awaited<ReturnType<typeof benchCri>> | undefined };

/** Runs what was asked for; with --render, only re-renders the report of the last run from latest.json. */
async function measure(): Promise<Report> {
  if (render) return JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Report;
  const started = Date.now();
  const storeIngest = only === undefined || only === 'store' ? await benchStoreIngest({ bytes: (quick ? 128 : 1024) * 1024 * 1024, runs: quick ? 3 : 5, workDir: '/var/tmp/berth-bench-ingest' }) : undefined;
  const cri = only === undefined || only === 'cri' ? await benchCri({ quick }) : undefined;
  const result = { date: new Date().toISOString(), machine, quick, seconds: Math.round((Date.now() - started) / 1000), storeIngest, cri };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
const report = await measure();
const { storeIngest, cri } = report;
/** A full run (all parts, not quick) writes docs/; anything less writes bench/results/. */
const partial = report.quick || storeIngest === undefined || cri === undefined;
// The plot sits beside its report: docs/ after a full run, bench/results/ otherwise.
if (cri !== undefined) writeFileSync(partial ? join(out, 'latency.svg') : join(root, 'docs/benchmarks-latency.svg'), latencyPlot(cri.results));

/** Berth's CreateContainer+StartContainer against bare `runc create` + `runc start` (the floor). */
const overFloor = (c: NonNullable<Report['cri']>): number => (c.results['CreateContainer+StartContainer']?.berth.median ?? NaN) / c.floor.createStartMs.median;

/**
 * The targets the issues set, each with what this run measured and, where it
 * is missed, why (the reasons are the structure of Berth today; the figures
 * behind them are in docs/performance-notes.md).
 */
function targets(c: NonNullable<Report['cri']>): string[] {
  const r = c.results;
  const ratio = (name: string) => r[name]?.ratio ?? NaN;
  const median = (name: string) => r[name]?.berth.median ?? NaN;
  const lifecycle = ['RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'CreateContainer', 'StartContainer', 'StopContainer', 'RemoveContainer'];
  const lists = Object.keys(r).filter((n) => / \(\d+\)$/.test(n) && /^(List|ContainerStatus)/.test(n) && !/Stats/.test(n));
  const stats = Object.keys(r).filter((n) => /Stats|ImageFsInfo/.test(n));
  const createStart = overFloor(c);
  const b = c.resources.berth;
  const d = c.resources.containerd;
  const pull = Object.keys(r).find((n) => n.startsWith('PullImage cold (5 layers'));
  const floor = r[versionCall];
  const callFloor = floor === undefined ? 'a gRPC round trip through grpc-js costs about 1.3 ms here on its own' : `Berth's Version, which does no work, took ${ms(floor.berth.median)} ms in this run (containerd's ${ms(floor.containerd.median)} ms)`;
  const row = (target: string, measured: string, met: boolean, why: string) => `| ${target} | ${measured} | ${met ? 'met' : 'missed'} | ${met ? '' : why} |`;
  return [
    '### Targets',
    '',
    '| target | this run | | why, where missed |',
    '| --- | --- | --- | --- |',
    ...lifecycle.map((n) =>
      row(
        `${n} ≤ 0.7× containerd`,
        `${ratio(n).toFixed(2)}×`,
        ratio(n) <= 0.7,
        {
          RunPodSandbox: 'CNI ADD and the pause\'s `runc run` are processes, as for containerd (Berth runs the two side by side, so on two cores they contend)',
          StopPodSandbox: 'CNI DEL and killing the pause dominate, as for containerd',
          RemovePodSandbox: 'store calls (snapshot removal) and the record',
          CreateContainer: (() => {
            const both = 0.7 * (r['CreateContainer+StartContainer']?.containerd.median ?? NaN);
            const bare = c.floor.createStartMs.median;
            return `Berth runs conmon + \`runc create\` at Create; containerd defers it to Start. This target and StartContainer's together ask Create+Start ≤ 0.7× containerd's ${(both / 0.7).toFixed(0)} ms = ${both.toFixed(0)} ms, ${both < bare ? `below bare runc's ${bare.toFixed(0)} ms` : `${(both - bare).toFixed(0)} ms over bare runc's ${bare.toFixed(0)} ms for everything else`}`;
          })(),
          StartContainer: '',
          StopContainer: '',
          RemoveContainer: `the executor only moves the record aside (its cleanup follows in the background); what is left is two gRPC hops, the frontend's and the executor's: ${callFloor}`,
        }[n] ?? '',
      ),
    ),
    row('CreateContainer+StartContainer ≤ 1.2× bare `runc create` + `runc start`', `${createStart.toFixed(2)}×`, createStart <= 1.2, 'two gRPC hops per call, store round trips for the image and the rootfs snapshot, record writes and conmon come on top of runc'),
    ...lists.map((n) => row(`${n} ≤ 1 ms`, `${median(n).toFixed(2)} ms`, median(n) <= 1, `answered from memory by the CRI frontend, but ${callFloor}`)),
    ...stats.map((n) =>
      row(
        `${n} ≤ 0.1× containerd`,
        `${ratio(n).toFixed(2)}×`,
        ratio(n) <= 0.1,
        /ImageFsInfo/.test(n) ? 'answered from a kept measurement by the CRI frontend, but a gRPC round trip alone is more than 0.1× containerd' : 'read from cgroup files per call, through two hops',
      ),
    ),
    row('CPU under the polling load ≤ containerd', `${(b.pollingCpuSeconds / d.pollingCpuSeconds).toFixed(2)}×`, b.pollingCpuSeconds <= d.pollingCpuSeconds, 'more processes answer each call'),
    ...(pull === undefined ? [] : [row('200 MB pull ≤ 0.6× containerd', `${ratio(pull).toFixed(2)}×`, ratio(pull) <= 0.6, 'bound by CPU on two cores: one pull uses about 2.2–2.6 s of CPU (the image service 0.8–2.2 s receiving, inflating and writing, the store 0.4–0.56 s hashing, the registry 0.3 s) where containerd uses 1.3–1.5 s; every byte is hashed twice (the store, the unpacker) and written twice (the blob, the files)')]),
    row('50 concurrent pulls: registry bytes 1.0× the image', `${b.concurrentPullBytesRatio.toFixed(2)}×`, b.concurrentPullBytesRatio <= 1.0001, 'more than one download of a blob'),
    row('idle RSS of the stack ≤ 200 MB', `${b.idleRssMiB.toFixed(0)} MiB`, b.idleRssMiB <= 200, 'five Node processes (berthd and four services, 65–150 MiB each, the store with prisma the largest) and nats-server; only a one-process stack fits'),
    row('≤ 2 MB per extra pod', `${(b.perPodHelperRssMiB + Math.max(0, b.perPodDaemonRssMiB)).toFixed(1)} MiB`, b.perPodHelperRssMiB + Math.max(0, b.perPodDaemonRssMiB) <= 2, 'one conmon per container, plus the daemons\' Node heaps, whose growth per pod is noisy (it was below zero in other runs)'),
    '',
  ];
}

const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const lines: string[] = [
  '# Benchmarks',
  '',
  '`nx run bench:run` (about 10 minutes; `-- --quick` for a short run, `-- --only store|cri` for one part; Debian\'s',
  "containerd is installed first by `scripts/setup --bench`) runs Berth's benchmarks and writes",
  '`bench/results/latest.json`; a full run rewrites this file and its plot. Absolute times on',
  'shared machines are noisy: read the medians and the ratios. Runs alternate between the things compared so',
  'machine drift cancels out.',
  '',
  `Latest run: ${report.date.slice(0, 10)}, ${report.machine.cpus} × ${report.machine.model}, ${report.machine.memoryGiB} GiB, Linux ${report.machine.kernel}, Node ${report.machine.node},`,
  `${report.machine.runc}, conmon ${report.machine.conmon.replace('conmon version ', '')}, ${report.machine.containerd.replace('containerd github.com/containerd/containerd ', 'containerd ')}; ${report.seconds} s in all${report.quick ? ' (quick mode)' : ''}.`,
  '',
];
if (storeIngest !== undefined) {
  const mib = storeIngest.bytes / 1024 / 1024;
  const row = (name: string, t: IngestResult['importSeconds'] | IngestResult['cpSeconds'], ratio?: number) =>
    `| ${name} | ${t.median.toFixed(2)} s | ${t.p90.toFixed(2)} s | ${(mib / t.median).toFixed(0)} MiB/s | ${ratio === undefined ? '1.00' : ratio.toFixed(2)} |`;
  lines.push(
    `## Store ingest (${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`})`,
    '',
    "A file of random bytes made a blob through the store service's internal gRPC API (the real `berth-store`",
    'process), against `cp` of the same file plus `sync` on the same disk. Ratio = cp time / ingest time (1.0 is as',
    `fast as cp; the target is ≥ 0.7). ${storeIngest.runs} alternating runs of each.`,
    '',
    '| path | median | p90 | throughput | ratio |',
    '| --- | --- | --- | --- | --- |',
    row('`cp` + `sync`', storeIngest.cpSeconds),
    row('`ImportContent` (the store copies with `copy_file_range`, hashes its copy while syncing)', storeIngest.importSeconds, storeIngest.importSeconds.ratio),
    row("`Ingest`, local writes (the client writes the store's data file, the store hashes reported ranges)", storeIngest.localWritesSeconds, storeIngest.localWritesSeconds.ratio),
    row('`Ingest`, bytes streamed over the socket', storeIngest.streamedSeconds, storeIngest.streamedSeconds.ratio),
    '',
    'Every path must sha256 the whole blob in the store (it never trusts a client\'s hash): about 0.66 s per GiB on one',
    'core here, while `cp` never reads the data at all (`copy_file_range` copies inside the kernel). `ImportContent`',
    'overlaps the hash with the `fsync`. Local writes pay a user-space copy of every byte with the store hashing on the',
    'other core; streaming adds HTTP/2 framing and protobuf decoding of every byte (grpc-js over a unix socket tops out',
    'around 320–430 MiB/s before any disk work). The image service uses local writes; `ImportContent` serves files',
    'already on the node.',
    '',
  );
}
if (cri !== undefined) {
  lines.push(
    "## CRI: Berth against containerd's CRI",
    '',
    "Both runtimes run on this machine at once, each with its own root and socket, runc, the same CNI conflist",
    '(bridge + host-local + portmap + loopback) and the same local `docker-registry`; one client library drives both',
    'with the same requests, alternating Berth and containerd call by call. Times in milliseconds; ratio = Berth',
    'median / containerd median (below 1: Berth is faster).',
    '',
    '| call | Berth median | Berth p90 | containerd median | containerd p90 | ratio |',
    '| --- | --- | --- | --- | --- | --- |',
    ...Object.entries(cri.results).map(([name, r]) => `| ${name} | ${ms(r.berth.median)} | ${ms(r.berth.p90)} | ${ms(r.containerd.median)} | ${ms(r.containerd.p90)} | ${r.ratio.toFixed(2)} |`),
    '',
    `![Latency distributions per call](${partial ? 'latency.svg' : 'benchmarks-latency.svg'})`,
    '',
    `Bare \`runc create\` + \`runc start\` of the same rootfs (the floor, one run before each round of the container lifecycle runs): median ${ms(cri.floor.createStartMs.median)} ms, p90 ${ms(cri.floor.createStartMs.p90)} ms; Berth's CreateContainer+StartContainer is ${overFloor(cri).toFixed(2)}× the floor.`,
    '',
    ...targets(cri),
    '### Where the time goes',
    '',
    "From Berth's own traces of the same runs (each service exports its spans to the harness): for each call, the",
    'median of its runs, then the median time of each step under it (steps overlap where they run in parallel, as',
    'layer downloads and unpacks do; RPC spans include the steps under them).',
    '',
    ...cri.breakdowns.flatMap((b) => [
      `**${b.call}** (${b.runs} runs, median ${ms(b.medianMs)} ms)`,
      '',
      '| step | median ms |',
      '| --- | --- |',
      ...b.steps.map((s) => `| ${s.name} | ${ms(s.medianMs)} |`),
      '',
    ]),
    '### Resources',
    '',
    '| | Berth | containerd |',
    '| --- | --- | --- |',
    `| idle RSS of the daemons | ${cri.resources.berth.idleRssMiB.toFixed(0)} MiB | ${cri.resources.containerd.idleRssMiB.toFixed(0)} MiB |`,
    `| per running pod (${cri.resources.berth.pods} pods, one container each): helpers (conmon / shims) | ${cri.resources.berth.perPodHelperRssMiB.toFixed(1)} MiB | ${cri.resources.containerd.perPodHelperRssMiB.toFixed(1)} MiB |`,
    `| per running pod: growth of the daemons (Node heaps make this noisy) | ${cri.resources.berth.perPodDaemonRssMiB.toFixed(1)} MiB | ${cri.resources.containerd.perPodDaemonRssMiB.toFixed(1)} MiB |`,
    `| CPU seconds under a kubelet-like polling load (${cri.resources.berth.pollingSeconds} s: List every second, stats and ImageFsInfo every 10 s) | ${cri.resources.berth.pollingCpuSeconds.toFixed(2)} | ${cri.resources.containerd.pollingCpuSeconds.toFixed(2)} |`,
    `| registry blob bytes for 50 concurrent pulls of one image / its size | ${cri.resources.berth.concurrentPullBytesRatio.toFixed(2)} | ${cri.resources.containerd.concurrentPullBytesRatio.toFixed(2)} |`,
    '',
    ...cri.notes.map((n) => `Note: ${n}`),
  );
}
const markdown = `${lines.join('\n')}\n`;
writeFileSync(partial ? join(out, 'latest.md') : join(root, 'docs/benchmarks.md'), markdown);
process.stdout.write(markdown);
