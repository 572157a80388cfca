import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { diesWithParent } from '@berth/bus';
import { connectCri, type CriClient } from '@berth/client';

const repoRoot = resolve(import.meta.dirname, '../../..');
const berthd = join(repoRoot, 'apps/berthd/dist/main.js');

export type StackService = 'store' | 'executor' | 'image' | 'cri';

export interface StackOptions {
  /** Extra TOML appended to the generated config. */
  extraConfig?: string;
  /** Environment added to berthd's. */
  env?: NodeJS.ProcessEnv;
  /** Whether to give the stack a valid CNI config dir (default true). */
  cni?: boolean;
}

export interface StackHandle {
  dir: string;
  socket: string;
  configPath: string;
  cri: CriClient;
  process: ChildProcess;
  /** The current pid of a service, from berthd's pid files. */
  pid(service: StackService): number;
  /** Everything berthd and the services have printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Boots a whole Berth stack (berthd: nats-server and the four services) in a
 * fresh temp dir with its own socket, and resolves once the CRI answers.
 * One stack per test suite: it takes a couple of seconds to start.
 */
export async function startStack(options: StackOptions = {}): Promise<StackHandle> {
  const dir = mkdtempSync('/tmp/berth-stack-');
  // Open like /var/lib and /run, so the state and run dirs' own modes are what keeps other users out.
  chmodSync(dir, 0o755);
  const socket = join(dir, 'run/berth.sock');
  const cniDir = join(dir, 'cni');
  mkdirSync(cniDir);
  if (options.cni !== false) copyFileSync(join(repoRoot, 'deploy/cni/10-berth.conflist'), join(cniDir, '10-berth.conflist'));
  const configPath = join(dir, 'config.toml');
  writeFileSync(
    configPath,
    [
      `stateDir = "${dir}/state"`,
      `runDir = "${dir}/run"`,
      `socket = "${socket}"`,
      '[cni]',
      `confDir = "${cniDir}"`,
      '[observability]',
      'logLevel = "info"',
      '[observability.ports]',
      'cri = 0',
      'store = 0',
      'image = 0',
      'executor = 0',
      options.extraConfig ?? '',
    ].join('\n'),
  );
  // Only the generated config configures the stack: BERTH_* variables of the
  // calling environment are left out.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_')));
  // The stack goes (SIGTERM, an orderly stop) when the process that started it dies without
  // stopping it, a crashed test or script, say: never left running on the machine.
  const [command, args] = diesWithParent(process.execPath, [berthd]);
  const child = spawn(command, args, {
    env: { ...inherited, BERTH_CONFIG: configPath, OTEL_SDK_DISABLED: 'true', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (c: Buffer): void => {
    output += c.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  await new Promise<void>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth stack did not start in 60 s:\n${output.slice(-4000)}`)), 60_000);
    const check = (): void => {
      if (output.includes('is serving the CRI on')) {
        clearTimeout(timer);
        resolvePromise();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`berthd exited with ${code}:\n${output.slice(-4000)}`));
    });
  });
  const cri = connectCri(socket, 10_000);
  return {
    dir,
    socket,
    configPath,
    cri,
    process: child,
    pid: (service) => Number(readFileSync(join(dir, 'run/pids', `${service}.pid`), 'utf8').trim()),
    output: () => output,
    async stop() {
      cri.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Removes every pod the stack still has, and their containers with them
 * (RemovePodSandbox stops what runs): what a suite's failed tests left
 * behind, before the stack stops. Failures are ignored; a stack that cannot
 * answer has nothing more to give.
 */
export async function removeAllPods(stack: StackHandle): Promise<void> {
  const pods = await stack.cri.runtime.listPodSandbox({ filter: undefined }).catch(() => ({ items: [] }));
  for (const p of pods.items) await stack.cri.runtime.removePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
}
