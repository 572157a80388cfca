// The CRI conformance suite (critest of cri-tools v1.26.1, the suite containerd
// and CRI-O run) against one Berth stack, with the Go gRPC client the kubelet
// up to 1.30 uses. Each critest spec is one test here: passed, failed with
// critest's message, or skipped as critest skipped it.
//
// The images critest needs are built by the kit's build-images.sh into a
// throwaway docker-registry whose storage is cached (keyed on the kit's files)
// under $CONFORMANCE_CACHE, default /var/cache/berth-conformance. The
// stack mirrors gcr.io and registry.k8s.io to that registry, since critest
// asks for those names and compares the names it gets back.
//
// CONFORMANCE_DIR: the kit's conformance directory (default
// ../shared/conformance next to the repository). CONFORMANCE_FOCUS: a
// ginkgo focus regexp, to run a part (e.g. 'Image Manager').
// CONFORMANCE_TIMEOUT_MINUTES: critest's bound on the whole run (20). (Not BERTH_*:
// berthd takes those as configuration and refuses an unknown key.)
// The report stays in tmp/conformance/: critest.log, report.json, failed.txt,
// specs.tsv, and berth.log (what the stack printed).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeAllPods, startStack, type RegistryHandle, type StackHandle } from '@berth/testing';
import { forceRemove, imageRegistry, locateKit, mountsUnder, readSpecs, repoRoot, run, suiteFailures, type Spec } from './kit.js';

const outDir = join(repoRoot, 'tmp/conformance');
const cacheDir = process.env['CONFORMANCE_CACHE'] || '/var/cache/berth-conformance';
// A whole run takes one to two minutes; the bound (CONFORMANCE_TIMEOUT_MINUTES) is for a
// runtime that hangs. critest's own timeout ends the run with a report; a hard kill follows.
const timeoutMinutes = Number(process.env['CONFORMANCE_TIMEOUT_MINUTES'] || 20);
const killAfterMs = (timeoutMinutes + 5) * 60_000;

const note = (line: string): void => {
  process.stderr.write(`conformance: ${line}\n`);
};
const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** What did not stop or go away cleanly after the run. */
const cleanupProblems: string[] = [];

async function conformance(): Promise<Spec[]> {
  const kit = locateKit();
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  let registry: RegistryHandle | undefined;
  let stack: StackHandle | undefined;
  const hostsDir = mkdtempSync('/tmp/berth-conformance-hosts-');
  try {
    let t = Date.now();
    const images = await imageRegistry(kit, cacheDir, outDir);
    registry = images.registry;
    note(`critest's images ${images.cached ? 'from the cache' : 'built'} in ${seconds(t)}, served by ${registry.url} from ${registry.storageDir}`);

    for (const upstream of ['gcr.io', 'registry.k8s.io']) {
      mkdirSync(join(hostsDir, upstream));
      writeFileSync(join(hostsDir, upstream, 'hosts.toml'), `server = "https://${upstream}"\n\n[host."${registry.url}"]\ncapabilities = ["pull", "resolve"]\n`);
    }
    t = Date.now();
    stack = await startStack({ extraConfig: `[image]\nhostsDir = "${hostsDir}"\n` });
    note(`stack up in ${seconds(t)}, CRI on ${stack.socket}`);

    const focus = process.env['CONFORMANCE_FOCUS'];
    const args = [kit.runCritest, `unix://${stack.socket}`, registry.host, outDir, '--', `-ginkgo.timeout=${timeoutMinutes}m`, ...(focus ? [`-ginkgo.focus=${focus}`] : [])];
    t = Date.now();
    const result = await run('bash', args, { env: { ...process.env, CRITEST: kit.critest }, timeoutMs: killAfterMs, log: join(outDir, 'run-critest.out') });
    note(`critest ran in ${seconds(t)}: ${result.output.trim().split('\n').at(-1) ?? ''} (report: ${outDir})`);
    const specs = readSpecs(outDir);
    if (specs === undefined || specs.length === 0) {
      const why = result.timedOut ? `was killed after ${killAfterMs / 60_000} minutes` : `exited with ${result.code ?? result.signal}`;
      throw new Error(`critest reported no specs: run-critest.sh ${why}; see ${join(outDir, 'critest.log')}:\n${result.output.slice(-3000)}`);
    }
    return specs;
  } finally {
    // Each step runs whatever the one before did: a registry left running would keep this process alive.
    const attempt = async (what: string, step: () => unknown): Promise<void> => {
      try {
        await step();
      } catch (e) {
        cleanupProblems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    const s = stack;
    if (s !== undefined) {
      await removeAllPods(s);
      let left: string[] = [];
      await attempt(`stopping the stack and removing ${s.dir}`, async () => {
        try {
          await s.stop();
        } catch (e) {
          left = mountsUnder(s.dir);
          throw e;
        }
      });
      if (left.length > 0) cleanupProblems.push(`still mounted after the stack stopped: ${left.join(', ')}`);
      await attempt(`removing ${s.dir}`, () => forceRemove(s.dir));
      await attempt('writing berth.log', () => writeFileSync(join(outDir, 'berth.log'), s.output()));
    }
    await attempt('stopping the registry', () => registry?.stop());
    rmSync(hostsDir, { recursive: true, force: true });
  }
}

let specs: Spec[] = [];
let setupError: unknown;
try {
  specs = await conformance();
} catch (e) {
  setupError = e;
}
const endedEarly = setupError === undefined ? suiteFailures(outDir) : [];

if (setupError !== undefined) {
  test('the CRI conformance suite (critest) runs against a Berth stack', () => {
    throw setupError;
  });
}
if (cleanupProblems.length > 0) {
  // Every pod critest made is removed by then: a stopped stack leaves nothing mounted behind.
  test('the stack critest ran on stops and leaves nothing behind', () => {
    throw new Error(cleanupProblems.join('; '));
  });
}
if (endedEarly.length > 0) {
  test('critest ran every spec to the end', () => {
    throw new Error(`critest's run ended early (${endedEarly.join(', ')}): the specs after that point are reported skipped; see ${join(outDir, 'critest.log')}`);
  });
}
for (const spec of [...specs].sort((a, b) => a.name.localeCompare(b.name))) {
  const name = `critest: ${spec.name}`;
  if (spec.state === 'skipped') test(name, { skip: `critest ${spec.ginkgoState} it` }, () => undefined);
  else
    test(name, () => {
      if (spec.state === 'passed') return;
      // critest's message says what failed; a stack trace into this file would not.
      const failure = new Error(`${spec.ginkgoState}: ${spec.message ?? ''} (critest.log in ${outDir})`);
      failure.stack = `Error: ${failure.message}`;
      throw failure;
    });
}
