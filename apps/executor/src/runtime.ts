// The OCI runtime (runc, or crun as another handler) and conmon, the
// per-container monitor: conmon runs `runc create`, holds the container's
// stdio, writes its log in the CRI format and its exit code to a file, so a
// container outlives a restart of the executor.
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { accessSync, constants, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { DeadlineExceededError, InternalError } from '@berth/errors';
import { describeExit, runProcess, spawnProcess, type SpawnedProcess } from '@berth/native';

export interface RuntimePaths {
  /** The runtime binary (runc or crun). */
  binary: string;
  /** `--root` of the runtime: its state of every container. */
  root: string;
  conmon: string;
  /** conmon writes `<exitDir>/<id>` holding the exit code when a container exits. */
  exitDir: string;
  /** conmon's attach sockets. */
  attachDir: string;
}

/** An exec, ready to run: the runtime binary and its arguments, and where the pid and the runtime's errors go. */
export interface ExecCommand {
  binary: string;
  args: string[];
  /** The process spec the runtime reads (`--process`). */
  specPath: string;
  pidPath: string;
  logPath: string;
}

export interface RuntimeState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
}

/**
 * Runs a helper program (runc, crun) to completion; a failure carries its
 * stderr. Helpers are spawned without fork's cost (see @berth/native's
 * spawnProcess): the executor starts several per pod and container.
 */
export async function run(binary: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await runProcess(binary, args, { timeoutMs });
  if (r.code === 0) return r.stdout.toString();
  const why = r.timedOut ? `timed out after ${timeoutMs} ms` : describeExit(r);
  throw new InternalError(`${binary} ${args.filter((a) => !a.startsWith('--root')).join(' ')}: ${r.stderr.toString().trim() || why}`);
}

/** A binary named without a path, found in PATH (conmon needs absolute paths). */
export function findBinary(name: string): string {
  if (isAbsolute(name)) return name;
  for (const dir of (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return name;
}

/**
 * The fields of /proc/<pid>/stat from field 3 (state) on: [0] the state,
 * [1] the parent pid, [19] the start time. The command name before them may
 * hold spaces and parentheses, so they are taken after its last ')'.
 * Undefined when no such process runs.
 */
export async function procStat(pid: number): Promise<string[] | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    // Read at once: procfs never waits on a disk, and through the thread pool
    // this one small read costs four queued round trips (the pool may be busy
    // with CNI or file work), on every status, list and stop.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * A process's start time (clock ticks since boot, field 22 of
 * /proc/<pid>/stat); with the pid it names one process for good, where a
 * pid alone may be reused. Undefined when no such process runs.
 */
export async function processStart(pid: number): Promise<string | undefined> {
  const fields = await procStat(pid);
  // A zombie has exited.
  return fields === undefined || fields[0] === 'Z' ? undefined : fields[19];
}

/** Whether the process recorded as (pid, start) still runs. */
export async function stillRunning(pid: number, start: string | undefined): Promise<boolean> {
  const now = await processStart(pid);
  return now !== undefined && (start === undefined || start === now);
}

export class OciRuntime {
  readonly paths: RuntimePaths;

  constructor(paths: RuntimePaths) {
    this.paths = { ...paths, binary: findBinary(paths.binary), conmon: findBinary(paths.conmon) };
  }

  private runc(args: string[], timeoutMs?: number): Promise<string> {
    return run(this.paths.binary, ['--root', this.paths.root, ...args], timeoutMs);
  }

  async init(): Promise<void> {
    for (const dir of [this.paths.root, this.paths.exitDir, this.paths.attachDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Creates and starts a container without a monitor (the pod's pause
   * process: no logs, nothing to attach to) in one `runc run --detach`: one
   * runtime process instead of a create and a start.
   */
  async runDetached(id: string, bundle: string): Promise<number> {
    const pidFile = join(bundle, 'pidfile');
    const logPath = join(bundle, 'create.log');
    // runc's stderr goes to a file: the container's init inherits it, so a pipe would stay open as long as the container runs.
    const log = await open(logPath, 'w');
    try {
      const exit = await spawnProcess(this.paths.binary, ['--root', this.paths.root, 'run', '--detach', '--bundle', bundle, '--pid-file', pidFile, id], { stdio: ['ignore', 'ignore', log.fd] }).exited;
      if (exit.code !== 0) {
        const text = await readFile(logPath, 'utf8').catch(() => '');
        throw new InternalError(`runc run ${id}: ${text.trim() || describeExit(exit)}`);
      }
    } finally {
      await log.close();
    }
    return Number((await readFile(pidFile, 'utf8')).trim());
  }

  /**
   * Creates a container under conmon. conmon double-forks (it survives the
   * executor), runs `runc create`, and reports the container's pid, or the
   * runtime's error, on a sync pipe.
   */
  async createMonitored(id: string, bundle: string, options: { logPath: string; name: string; stdin: boolean; stdinOnce?: boolean; tty: boolean; logSizeMax?: number }): Promise<number> {
    const persist = join(bundle, 'persist');
    await mkdir(persist, { recursive: true });
    await rm(join(this.paths.exitDir, id), { force: true });
    const errors = await open(join(bundle, 'conmon.log'), 'a');
    const args = [
      '--api-version', '1',
      '--cid', id,
      '--cuuid', id,
      '--name', options.name,
      '--bundle', bundle,
      '--runtime', this.paths.binary,
      '--runtime-arg', `--root=${this.paths.root}`,
      '--container-pidfile', join(bundle, 'pidfile'),
      '--conmon-pidfile', join(bundle, 'conmon.pid'),
      '--exit-dir', this.paths.exitDir,
      '--persist-dir', persist,
      '--socket-dir-path', this.paths.attachDir,
      '--log-path', `k8s-file:${options.logPath}`,
      '--log-level', 'error',
      ...(options.logSizeMax ? ['--log-size-max', String(options.logSizeMax)] : []),
      // Without --leave-stdin-open, conmon closes the container's stdin when an attached client closes its own (stdin_once).
      ...(options.stdin ? ['--stdin', ...(options.stdinOnce ? [] : ['--leave-stdin-open'])] : []),
      ...(options.tty ? ['--terminal'] : []),
    ];
    try {
      const child = spawnProcess(this.paths.conmon, args, { stdio: ['ignore', 'ignore', errors.fd, 'pipe'], newSession: true, env: { ...process.env, _OCI_SYNCPIPE: '3' } });
      const sync = child.stdio[3]!;
      const reply = await new Promise<string>((resolve, reject) => {
        let text = '';
        const timer = setTimeout(() => reject(new DeadlineExceededError(`conmon did not report container ${id} within 60 s`)), 60_000);
        sync.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('\n')) {
            clearTimeout(timer);
            resolve(text);
          }
        });
        sync.on('end', () => {
          clearTimeout(timer);
          resolve(text);
        });
        sync.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      sync.destroy();
      let parsed: { data?: number; message?: string };
      try {
        parsed = JSON.parse(reply.split('\n')[0] ?? '') as typeof parsed;
      } catch {
        const log = await readFile(join(bundle, 'conmon.log'), 'utf8').catch(() => '');
        throw new InternalError(`conmon gave no pid for ${id}: ${log.trim() || reply.trim() || 'no reply'}`);
      }
      if (typeof parsed.data !== 'number' || parsed.data <= 0) throw new InternalError(`creating container ${id} failed: ${parsed.message ?? 'no message'}`);
      return parsed.data;
    } finally {
      await errors.close();
    }
  }

  async start(id: string): Promise<void> {
    await this.runc(['start', id]);
  }

  /** Changes a running container's cgroup limits (`runc update`). */
  async update(id: string, resources: Record<string, unknown>, scratch: string): Promise<void> {
    await mkdir(scratch, { recursive: true, mode: 0o700 });
    const file = join(scratch, 'resources.json');
    await writeFile(file, JSON.stringify(resources));
    try {
      await this.runc(['update', '--resources', file, id]);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.runc(['kill', ...(all ? ['--all'] : []), id, signal]);
  }

  /** The runtime's view of a container, undefined when it does not know it. */
  async state(id: string): Promise<RuntimeState | undefined> {
    try {
      const s = JSON.parse(await this.runc(['state', id])) as { status: RuntimeState['status']; pid: number };
      return { status: s.status, pid: s.pid };
    } catch {
      return undefined;
    }
  }

  /** Deletes the container from the runtime; one it does not know is fine. */
  async delete(id: string): Promise<void> {
    try {
      await this.runc(['delete', '--force', id]);
    } catch (err) {
      if (/does not exist|not found/i.test((err as Error).message)) return;
      throw err;
    }
  }

  /** The exit code conmon recorded, undefined while the container has not exited. */
  async exitCode(id: string): Promise<{ code: number; at: Date } | undefined> {
    const path = join(this.paths.exitDir, id);
    try {
      const handle = await open(path, 'r');
      try {
        const [text, st] = await Promise.all([handle.readFile('utf8'), handle.stat()]);
        const code = Number(text.trim());
        return Number.isInteger(code) ? { code, at: st.mtime } : undefined;
      } finally {
        await handle.close();
      }
    } catch {
      return undefined;
    }
  }

  /**
   * Writes the process spec of an exec into `scratch` (a directory of its
   * own) and returns the command that runs it in container `id`: the pid of
   * the process goes to `pidPath`, the runtime's own errors (JSON lines) to
   * `logPath`.
   */
  async prepareExec(id: string, processSpec: object, scratch: string): Promise<ExecCommand> {
    await mkdir(scratch, { recursive: true, mode: 0o700 });
    const specPath = join(scratch, 'process.json');
    const pidPath = join(scratch, 'pid');
    const logPath = join(scratch, 'runtime.log');
    await writeFile(specPath, JSON.stringify(processSpec));
    return { binary: this.paths.binary, args: ['--root', this.paths.root, '--log', logPath, '--log-format', 'json', 'exec', '--process', specPath, '--pid-file', pidPath, id], specPath, pidPath, logPath };
  }

  /**
   * Runs a process in a running container and collects its output, each
   * stream capped at `maxOutput` bytes (the rest is read and dropped). After
   * `timeoutMs` (0: none) the process is killed and the call fails.
   */
  async exec(id: string, processSpec: object, scratch: string, timeoutMs: number, maxOutput: number): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    const { binary, args, pidPath } = await this.prepareExec(id, processSpec, scratch);
    try {
      // At the timeout the process in the container is killed (runc exec then ends), or runc itself when its pid is not known yet.
      const onTimeout = (child: SpawnedProcess) =>
        void readFile(pidPath, 'utf8')
          .then((pid) => process.kill(Number(pid.trim()), 'SIGKILL'))
          .catch(() => child.kill('SIGKILL'));
      const r = await runProcess(binary, args, { maxOutput, ...(timeoutMs > 0 ? { timeoutMs, onTimeout } : {}) });
      if (r.timedOut) throw new DeadlineExceededError(`command timed out after ${timeoutMs / 1000} s`);
      if (r.code === null) throw new InternalError(`exec in ${id} ended by ${r.signal}`);
      // runc exits 255 with its own message when it could not start the process.
      if (r.code === 255 && /^(time=|exec failed|ERRO)/m.test(r.stderr.toString())) throw new InternalError(`exec in ${id} failed: ${r.stderr.toString().trim()}`);
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.code };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
