// The real crictl (cri-tools, a static Go binary whose gRPC client is the
// kubelet's) run as a user runs it: one process per command, against one
// socket given explicitly, with no crictl.yaml in the way.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import pty from 'node-pty';

const repoRoot = resolve(import.meta.dirname, '../..');

/**
 * The crictl binary: `$CRI_TOOLS_DIR/crictl`, else the one next to the
 * repository (`<repo root>/../shared/bin/crictl`). Throws when there is none:
 * a suite that needs it fails rather than skips.
 */
export function crictlBinary(): string {
  const dir = process.env['CRI_TOOLS_DIR'] ?? join(repoRoot, '../shared/bin');
  const path = join(dir, 'crictl');
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`no executable crictl at ${path} (from ${process.env['CRI_TOOLS_DIR'] === undefined ? 'the default <repo root>/../shared/bin' : 'CRI_TOOLS_DIR'}): set CRI_TOOLS_DIR to the directory holding cri-tools' crictl`);
  }
  return path;
}

export interface CrictlResult {
  /** The exit code (null when killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What a running crictl has printed so far, and how it ended. */
export interface CrictlProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited and its output is read. */
  exited: Promise<CrictlResult>;
  /** SIGKILL unless it already exited; resolves once it has. */
  kill(): Promise<CrictlResult>;
}

/** What a crictl on a pseudo-terminal has printed (its stdout and stderr are the terminal). */
export interface CrictlTerminal {
  output(): string;
  write(data: string): void;
  resize(cols: number, rows: number): void;
  exited: Promise<number>;
  kill(): void;
}

/** Crictl's environment without the variables that would name another endpoint or config. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['CONTAINER_RUNTIME_ENDPOINT', 'IMAGE_SERVICE_ENDPOINT', 'CRI_CONFIG_FILE']) delete env[k];
  return env;
}

export class Crictl {
  readonly binary: string;
  /** Global flags every command gets: both endpoints, no config file, a per-call timeout for a loaded machine. */
  readonly globals: string[];

  constructor(socket: string, binary = crictlBinary()) {
    this.binary = binary;
    const endpoint = `unix://${socket}`;
    // crictl's --timeout bounds each CRI call (2 s by default): too short on a busy 2-core machine.
    this.globals = ['--config', '/dev/null', '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--timeout', '60s'];
  }

  /** Starts `crictl <args>`; stdin is a pipe (ended at once unless `keepStdin`). */
  spawn(args: string[], options: { input?: string | Buffer; keepStdin?: boolean } = {}): CrictlProcess {
    const child = spawn(this.binary, [...this.globals, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined); // a process that exits before reading its stdin
    if (options.input !== undefined) child.stdin!.write(options.input);
    if (!options.keepStdin) child.stdin!.end();
    const exited = new Promise<CrictlResult>((resolvePromise, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
    });
    return {
      child,
      stdout: () => stdout,
      stderr: () => stderr,
      exited,
      kill: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        return exited;
      },
    };
  }

  /** Runs `crictl <args>` to its end (killed, and failing, after `timeoutMs`). */
  async run(args: string[], options: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<CrictlResult> {
    const p = this.spawn(args, options.input === undefined ? {} : { input: options.input });
    const timeoutMs = options.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void p.kill();
        reject(new Error(`crictl ${args.join(' ')} did not finish in ${timeoutMs} ms; stdout ${JSON.stringify(p.stdout())}, stderr ${JSON.stringify(p.stderr())}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([p.exited, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `crictl <args>` and expects exit code 0; gives its stdout. */
  async ok(args: string[], options: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new Error(`crictl ${args.join(' ')} exited with ${r.code}:\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** Runs `crictl <args>` and parses its stdout as JSON. */
  async json<T = any>(args: string[]): Promise<T> {
    const out = await this.ok(args);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`crictl ${args.join(' ')} printed no JSON: ${JSON.stringify(out)}`);
    }
  }

  /** Starts `crictl <args>` on a pseudo-terminal of `cols` x `rows`. */
  terminal(args: string[], size: { cols: number; rows: number }): CrictlTerminal {
    const term = pty.spawn(this.binary, [...this.globals, ...args], { ...size, env: cleanEnv() as Record<string, string> });
    let out = '';
    term.onData((d) => (out += d));
    const exited = new Promise<number>((resolvePromise) => term.onExit((e) => resolvePromise(e.exitCode)));
    return {
      output: () => out,
      write: (d) => term.write(d),
      resize: (c, r) => term.resize(c, r),
      exited,
      kill: () => {
        try {
          term.kill('SIGKILL');
        } catch {
          // already gone
        }
      },
    };
  }
}

/** Without terminal control sequences (crictl stats clears the screen before its table). */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}

/**
 * A table crictl prints (Go's tabwriter, at least 3 spaces between cells):
 * one record per row, keyed by the header's column names.
 */
export function parseTable(text: string): { header: string[]; rows: Record<string, string>[] } {
  const lines = stripAnsi(text).split('\n').filter((l) => l.trim() !== '');
  const split = (l: string) => l.trim().split(/\s{2,}/);
  const header = lines[0] === undefined ? [] : split(lines[0]);
  const rows = lines.slice(1).map((l) => {
    const cells = split(l);
    if (cells.length !== header.length) throw new Error(`a table row with ${cells.length} cells under ${header.length} columns: ${JSON.stringify(l)} (header ${JSON.stringify(lines[0])})`);
    return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
  });
  return { header, rows };
}
