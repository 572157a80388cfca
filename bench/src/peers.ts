// The two runtimes the CRI benchmarks compare, each in its own temporary
// root with its own socket, the same CNI conflist, runc, and registry
// mirrors pointing at the same local docker-registry: a Berth stack and
// Debian's containerd with its CRI plugin.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectCri, type CriClient } from '@berth/client';
import { startStack } from '@berth/testing';
import { childrenNamed, pidsMatching } from './procs.js';

const repoRoot = resolve(import.meta.dirname, '../..');

export interface Peer {
  name: 'berth' | 'containerd';
  cri: CriClient;
  /** Pids of the runtime's daemons (for Berth: berthd, its services and nats-server). */
  daemonPids(): number[];
  /** Pids of its per-pod helpers: Berth's conmons, containerd's shims. */
  helperPids(): number[];
  stop(): Promise<void>;
}

/** A Berth stack; with `tracesEndpoint`, its services export their spans there (OTLP over HTTP). */
export async function startBerth(tracesEndpoint?: string): Promise<Peer> {
  const traces = tracesEndpoint === undefined ? {} : { BERTH_OBSERVABILITY__TRACES_EXPORTER: 'otlp', BERTH_OBSERVABILITY__OTLP_ENDPOINT: tracesEndpoint };
  const stack = await startStack({ env: { BERTH_OBSERVABILITY__LOG_LEVEL: 'warn', ...traces } });
  const cri = connectCri(stack.socket, 120_000);
  return {
    name: 'berth',
    cri,
    daemonPids: () =>
      [
        stack.process.pid ?? 0,
        ...(['cri', 'store', 'image', 'executor'] as const).map((s) => {
          try {
            return stack.pid(s);
          } catch {
            return 0;
          }
        }),
        ...childrenNamed(stack.process.pid ?? 0, 'nats-server'),
      ].filter((p) => p > 0),
    helperPids: () => pidsMatching(stack.dir, 'conmon'),
    async stop() {
      cri.close();
      await stack.stop();
    },
  };
}

/** containerd with its CRI plugin; `sandboxImage` must be pullable through `registryHost`. */
export async function startContainerd(registryHosts: string[], sandboxImage: string): Promise<Peer> {
  const dir = mkdtempSync('/var/tmp/berth-bench-containerd-');
  const socket = join(dir, 'containerd.sock');
  mkdirSync(join(dir, 'cni'));
  copyFileSync(join(repoRoot, 'deploy/cni/10-berth.conflist'), join(dir, 'cni/10-berth.conflist'));
  for (const registryHost of registryHosts) {
    mkdirSync(join(dir, 'certs.d', registryHost), { recursive: true });
    writeFileSync(join(dir, 'certs.d', registryHost, 'hosts.toml'), `server = "http://${registryHost}"\n\n[host."http://${registryHost}"]\n  capabilities = ["pull", "resolve"]\n`);
  }
  const config = join(dir, 'config.toml');
  writeFileSync(
    config,
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  # Like Berth on a host without CAP_SYS_RESOURCE: never below its own oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${dir}/certs.d"
`,
  );
  const log = join(dir, 'containerd.log');
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  for (let i = 0; i < 300 && !existsSync(socket); i++) await sleep(50);
  if (!existsSync(socket)) throw new Error(`containerd did not start:\n${output.slice(-3000)}`);
  const cri = connectCri(socket, 120_000);
  for (let i = 0; ; i++) {
    try {
      await cri.runtime.version({ version: '' });
      break;
    } catch (err) {
      if (i > 100) throw new Error(`containerd's CRI does not answer: ${(err as Error).message}\n${output.slice(-3000)}`);
      await sleep(100);
    }
  }
  return {
    name: 'containerd',
    cri,
    daemonPids: () => [child.pid ?? 0],
    helperPids: () => pidsMatching(socket, 'containerd-shim'),
    async stop() {
      cri.close();
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      // Shims outlive containerd: stop what is left, then unmount and remove its root.
      for (const line of readFileSync('/proc/mounts', 'utf8').split('\n').reverse()) {
        const target = line.split(' ')[1];
        if (target?.startsWith(dir)) await new Promise((r) => spawn('umount', ['-l', target]).once('exit', r));
      }
      writeFileSync(log, output);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
