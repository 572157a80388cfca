import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { UnavailableError } from '@berth/errors';

/** A free TCP port on loopback (racy by nature: bind it soon). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface NatsServerOptions {
  /** The nats-server binary; `nats-server` from PATH by default. */
  binary?: string;
  /** 0 or absent: a free loopback port. */
  port?: number;
  /**
   * A nats-server configuration file (`-c`), such as writeBusAuth's: how
   * secrets reach the server, since its command line is anyone's to read.
   */
  configFile?: string;
  /** Store directory for JetStream; JetStream is off without it. */
  storeDir?: string;
  /** How long to wait for the server to say it is ready. */
  readyTimeoutMs?: number;
  /**
   * The server gets SIGTERM when this process dies, however it dies
   * (diesWithParent): berthd's own server must not outlive a berthd killed
   * with SIGKILL.
   */
  dieWithParent?: boolean;
}

const setpriv = '/usr/bin/setpriv';

/**
 * `command args` so that the process gets SIGTERM when this one dies,
 * however it dies: run under util-linux's `setpriv --pdeathsig` (which
 * execs it, keeping its pid), or as it is where setpriv is not installed.
 */
export function diesWithParent(command: string, args: readonly string[]): [string, string[]] {
  return existsSync(setpriv) ? [setpriv, ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, [...args]];
}

export interface NatsServerHandle {
  url: string;
  port: number;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts nats-server on loopback and resolves once it accepts clients.
 * Rejects with `unavailable` when the binary is missing or the server exits
 * or stays silent.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const port = options.port !== undefined && options.port !== 0 ? options.port : await freeLoopbackPort();
  const args = [...(options.configFile === undefined ? [] : ['-c', options.configFile]), '-a', '127.0.0.1', '-p', String(port)];
  if (options.storeDir !== undefined) {
    await mkdir(options.storeDir, { recursive: true });
    args.push('-js', '-sd', options.storeDir);
  }
  const binary = options.binary ?? 'nats-server';
  const [command, commandArgs] = options.dieWithParent === true ? diesWithParent(binary, args) : [binary, args];
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new UnavailableError(`nats-server did not become ready on port ${port}: ${output.slice(-500)}`));
    }, options.readyTimeoutMs ?? 10_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new UnavailableError(`start ${binary}: ${err.message}`, { cause: err }));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UnavailableError(`${binary} exited with ${code}: ${output.slice(-500)}`));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr?.removeAllListeners('data');
        child.stderr?.resume();
        resolve();
      }
    });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
