import { spawn, type ChildProcess } from 'node:child_process';
import { debianPackageFile } from './debian.js';

/**
 * kubectl from Debian's `kubernetes-client` package (1.20), whose exec, attach
 * and port-forward speak SPDY/3.1 through client-go as the kubelet's callers
 * do. Unpacked, not installed, since another package may own /usr/bin/kubectl.
 */
export function kubectlBinary(): string {
  return debianPackageFile('kubernetes-client', 'usr/bin/kubectl');
}

export interface KubectlOptions {
  /** Written to kubectl's stdin by runKubectl, which then closes it unless `tty` is set (spawnKubectl leaves stdin to the caller). */
  input?: string | Buffer;
  /**
   * Runs kubectl on a pseudo-terminal (util-linux `script`), which `-t` needs:
   * without one kubectl warns "Unable to use a TTY" and goes on without.
   * stdout and stderr then both arrive on stdout, with \r\n line ends.
   */
  tty?: boolean;
  /** runKubectl kills kubectl and rejects after this long; default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface KubectlResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `argv` as one POSIX shell word each, for `script -c`. */
function shellQuote(argv: string[]): string {
  return argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
}

/**
 * Starts `command` (kubectl and its arguments) with piped stdio, on a
 * pseudo-terminal when `tty` is set. `script -e` exits with kubectl's code;
 * `-f` flushes output at once, so tests can wait for a prompt.
 */
export function spawnKubectl(command: string[], options: KubectlOptions = {}): ChildProcess {
  const env = { ...process.env, ...options.env };
  if (options.tty === true) return spawn('script', ['-q', '-f', '-e', '-c', shellQuote(command), '/dev/null'], { env, stdio: 'pipe' });
  const [file, ...args] = command;
  if (file === undefined) throw new Error('spawnKubectl needs a command');
  return spawn(file, args, { env, stdio: 'pipe' });
}

/** Runs `command` to its end and collects its output; rejects (with the output so far) on a timeout. */
export function runKubectl(command: string[], options: KubectlOptions = {}): Promise<KubectlResult> {
  return kubectlResult(spawnKubectl(command, options), options);
}

/** Feeds `options.input` to a spawned kubectl and collects its output until it exits. */
export function kubectlResult(child: ChildProcess, options: KubectlOptions = {}): Promise<KubectlResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  // Under `script` stdin stays open until kubectl has exited: script would
  // pass its EOF to the pty at once, whatever kubectl had read by then. A
  // test ends the input itself ("\x04" is EOF to a remote tty, or "exit\n").
  if (options.input !== undefined) child.stdin?.write(options.input);
  if (options.tty !== true) child.stdin?.end();
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${child.spawnargs.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      child.stdin?.destroy();
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}
