// The CRI conformance kit (critest of cri-tools v1.26.1 with the scripts that
// build its images and run it), found next to the repository, and what it
// leaves behind: the registry storage its images were pushed to, cached, and
// the report of a run.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { mountPoints } from '@berth/native';
import { startRegistry, type RegistryHandle } from '@berth/testing';

export const repoRoot = resolve(import.meta.dirname, '../../..');

export interface Kit {
  /** The kit's conformance directory (build-images.sh, run-critest.sh, images-src/). */
  dir: string;
  buildImages: string;
  runCritest: string;
  critest: string;
}

/**
 * The kit: $CONFORMANCE_DIR, else ../shared/conformance next to the
 * repository. Throws, naming what is missing, when it is not there.
 */
export function locateKit(env: NodeJS.ProcessEnv = process.env): Kit {
  const override = env['CONFORMANCE_DIR'];
  const dir = resolve(override !== undefined && override !== '' ? override : join(repoRoot, '../shared/conformance'));
  const how = override ? 'CONFORMANCE_DIR' : 'the default ../shared/conformance next to the repository; set CONFORMANCE_DIR to the kit\'s conformance directory';
  const kit: Kit = {
    dir,
    buildImages: join(dir, 'build-images.sh'),
    runCritest: join(dir, 'run-critest.sh'),
    critest: env['CRITEST'] ?? join(dir, '../bin/critest'),
  };
  for (const file of [kit.buildImages, kit.runCritest, kit.critest]) {
    try {
      accessSync(file, file === kit.critest ? constants.X_OK : constants.R_OK);
    } catch {
      throw new Error(`the CRI conformance kit is missing: no ${file === kit.critest ? 'executable ' : ''}${file} (kit dir ${dir}, from ${how})`);
    }
  }
  return kit;
}

/** The files the kit's images are built from, hashed: the cache key of the registry storage. */
export function imagesKey(kit: Kit, env: NodeJS.ProcessEnv = process.env): string {
  const hash = createHash('sha256');
  const files: string[] = [kit.buildImages];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  const src = join(kit.dir, 'images-src');
  if (existsSync(src)) walk(src);
  for (const f of files) hash.update(`${relative(kit.dir, f)}\0`).update(readFileSync(f)).update('\0');
  hash.update(`MANIFEST_FORMAT=${env['MANIFEST_FORMAT'] ?? 'v2s2'}`);
  return hash.digest('hex').slice(0, 16);
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
}

/** Runs a command in its own process group; kills the group after timeoutMs. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; log?: string }): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const collect = (c: Buffer): void => {
      output += c.toString();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const kill = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    // A crashed test run takes the command's process group with it.
    const onExit = (): void => kill();
    process.once('exit', onExit);
    child.once('error', (e) => {
      clearTimeout(timer);
      process.removeListener('exit', onExit);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', onExit);
      if (options.log !== undefined) writeFileSync(options.log, output);
      resolvePromise({ code, signal, output, timedOut });
    });
  });
}

export interface ImageRegistry {
  registry: RegistryHandle;
  /** Whether the images came from the cache (false: built now). */
  cached: boolean;
}

/**
 * A throwaway docker-registry serving every image critest needs. The storage
 * dir build-images.sh filled is kept under cacheDir, keyed on the kit's
 * files, and served as is by later runs.
 */
export async function imageRegistry(kit: Kit, cacheDir: string, logDir: string): Promise<ImageRegistry> {
  const key = imagesKey(kit);
  const storage = join(cacheDir, `registry-${key}`);
  if (existsSync(join(storage, 'docker'))) return { registry: await startRegistry({ storageDir: storage }), cached: true };

  mkdirSync(cacheDir, { recursive: true });
  const partial = `${storage}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  const builder = await startRegistry({ storageDir: partial });
  const log = join(logDir, 'build-images.log');
  let built: Run;
  try {
    built = await run('bash', [kit.buildImages, builder.host], { timeoutMs: 10 * 60_000, log });
  } finally {
    await builder.stop();
  }
  if (built.code !== 0) {
    rmSync(partial, { recursive: true, force: true });
    throw new Error(`build-images.sh ${built.timedOut ? 'did not finish in 10 minutes' : `exited with ${built.code ?? built.signal}`} (${log}):\n${built.output.slice(-3000)}`);
  }
  try {
    renameSync(partial, storage);
  } catch (e) {
    // Another run cached the same images first: use those.
    rmSync(partial, { recursive: true, force: true });
    if (!existsSync(join(storage, 'docker'))) throw e;
  }
  // Storage of other kit versions is never served again.
  for (const name of readdirSync(cacheDir)) {
    if (/^registry-[0-9a-f]{16}$/.test(name) && name !== `registry-${key}`) rmSync(join(cacheDir, name), { recursive: true, force: true });
  }
  return { registry: await startRegistry({ storageDir: storage }), cached: false };
}

export type SpecState = 'passed' | 'failed' | 'skipped';

export interface Spec {
  name: string;
  state: SpecState;
  /** critest's ginkgo state, e.g. "timedout" or "panicked" for a failed spec. */
  ginkgoState: string;
  message?: string;
}

/**
 * Every spec of a run, from run-critest.sh's OUTDIR/specs.tsv (state, tab,
 * name) with the messages of OUTDIR/failed.txt ("FAILED: name" then
 * "    -> message"). Undefined when the run wrote no specs.tsv.
 */
export function readSpecs(outDir: string): Spec[] | undefined {
  const tsv = join(outDir, 'specs.tsv');
  if (!existsSync(tsv)) return undefined;
  const messages = new Map<string, string>();
  const failedFile = join(outDir, 'failed.txt');
  if (existsSync(failedFile)) {
    let current: string | undefined;
    for (const line of readFileSync(failedFile, 'utf8').split('\n')) {
      if (line.startsWith('FAILED: ')) {
        current = line.slice('FAILED: '.length);
        messages.set(current, '');
      } else if (current !== undefined && line.startsWith('    -> ')) {
        messages.set(current, line.slice('    -> '.length));
      }
    }
  }
  const specs: Spec[] = [];
  for (const line of readFileSync(tsv, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const tab = line.indexOf('\t');
    const ginkgoState = tab < 0 ? line : line.slice(0, tab);
    const name = tab < 0 ? '' : line.slice(tab + 1);
    const state: SpecState = ginkgoState === 'passed' ? 'passed' : ginkgoState === 'skipped' || ginkgoState === 'pending' ? 'skipped' : 'failed';
    const message = messages.get(name);
    specs.push({ name, state, ginkgoState, ...(state === 'failed' ? { message: message || `critest reports the spec ${ginkgoState}` } : {}) });
  }
  return specs;
}

/**
 * Why critest's run as a whole failed besides its specs' failures (ginkgo's
 * SpecialSuiteFailureReasons in OUTDIR/report.json, e.g. "Interrupted by
 * Timeout": the specs after that point did not run).
 */
export function suiteFailures(outDir: string): string[] {
  try {
    const report = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as { SpecialSuiteFailureReasons?: string[] | null }[];
    return report.flatMap((r) => r.SpecialSuiteFailureReasons ?? []);
  } catch {
    return [];
  }
}

/** The mount points under dir (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = `${resolve(dir)}/`;
  return mountPoints(readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/** Detaches every mount under dir, then removes it. */
export async function forceRemove(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { timeoutMs: 10_000 });
  rmSync(dir, { recursive: true, force: true });
}
