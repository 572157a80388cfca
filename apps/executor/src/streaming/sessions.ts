// The process side of streaming: an exec runs `runc exec` (with pipes, or
// under a pseudo-terminal for a TTY), an attach joins the container's stdio
// through conmon's attach socket. Both end when the process or container
// does, or when the client goes away: then nothing they started is left.
import { closeSync, constants, openSync } from 'node:fs';
import { open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { spawnProcess } from '@berth/native';
import pty from 'node-pty';
import { SeqpacketSocket } from 'node-unix-socket';
import { procStat, type ExecCommand } from '../runtime.js';
import type { Channels, Outcome, TerminalSize } from './channels.js';

export interface ExecTarget {
  /** The runtime's exec command (OciRuntime.prepareExec). */
  command: ExecCommand;
  /** The directory of its spec, pid and log files; removed at the end. */
  scratch: string;
  tty: boolean;
}

/** Kills a process and every descendant (a shell's children too), children first found, all at once. */
async function killTree(pid: number): Promise<void> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number((await procStat(Number(entry)))?.[1]);
    if (ppid > 0) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const all: number[] = [];
  for (const queue = [pid]; queue.length > 0; ) {
    const p = queue.shift()!;
    all.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Waits up to `ms` for the first terminal size, so the process starts at the client's size. */
function firstSize(channels: Channels, ms: number): Promise<TerminalSize | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    channels.onResize((size) => {
      clearTimeout(timer);
      resolve(size);
    });
  });
}

async function runtimeError(logPath: string): Promise<string> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  const messages = text
    .split('\n')
    .map((line) => {
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string };
        return entry.level === 'error' ? entry.msg : undefined;
      } catch {
        return undefined;
      }
    })
    .filter((m): m is string => m !== undefined);
  return messages.at(-1) ?? 'the OCI runtime could not start the process';
}

/** Runs one exec session to its end and returns how it ended. */
export async function runExec(target: ExecTarget, channels: Channels): Promise<Outcome> {
  const { binary, args, specPath, pidPath, logPath } = target.command;
  const size = target.tty ? await firstSize(channels, 250) : undefined;
  if (target.tty) {
    // The runtime sizes the container's terminal before the process starts (the spec's consoleSize);
    // its own resize from the outer terminal comes only after the start, too late for a process that asks at once.
    const spec = JSON.parse(await readFile(specPath, 'utf8')) as Record<string, unknown>;
    await writeFile(specPath, JSON.stringify({ ...spec, consoleSize: { height: size?.height ?? 24, width: size?.width ?? 80 } }));
  }
  const onGone = () => void readFile(pidPath, 'utf8').then((pid) => killTree(Number(pid.trim())), () => undefined);
  channels.gone.addEventListener('abort', onGone);
  try {
    const code = target.tty ? await execWithTerminal(binary, args, size, channels) : await execWithPipes(binary, args, channels);
    const started = await readFile(pidPath, 'utf8').then(
      () => true,
      () => false,
    );
    if (!started) return { error: await runtimeError(logPath) };
    return { exitCode: code };
  } finally {
    channels.gone.removeEventListener('abort', onGone);
    await rm(target.scratch, { recursive: true, force: true });
  }
}

async function execWithPipes(binary: string, args: string[], channels: Channels): Promise<number> {
  // A process that stops reading before the client stops writing is not an error (spawnProcess hears pipe errors).
  const child = spawnProcess(binary, args, { stdio: [channels.stdin ? 'pipe' : 'ignore', channels.stdout ? 'pipe' : 'ignore', channels.stderr ? 'pipe' : 'ignore'] });
  if (channels.stdin && child.stdin) channels.stdin.pipe(child.stdin);
  const outputs: Promise<void>[] = [];
  // Only the sending side counts: a client's stdout stream is never written by the client, so never ends.
  if (channels.stdout && child.stdout) outputs.push(finished(child.stdout.pipe(channels.stdout), { readable: false }).catch(() => undefined));
  if (channels.stderr && child.stderr) outputs.push(finished(child.stderr.pipe(channels.stderr), { readable: false }).catch(() => undefined));
  const { code, signal } = await child.exited;
  channels.stdin?.unpipe();
  // All output has reached the client (or the client is gone) before the outcome is reported.
  await Promise.all(outputs);
  return code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
}

function execWithTerminal(binary: string, args: string[], size: TerminalSize | undefined, channels: Channels): Promise<number> {
  // runc in the foreground with a terminal spec makes the container's pty and copies it to and from its
  // own stdio, which is this pty; a resize here reaches runc as SIGWINCH, and runc resizes the inner one.
  const term = pty.spawn(binary, args, { cols: size?.width ?? 80, rows: size?.height ?? 24, encoding: null, env: process.env as Record<string, string> });
  channels.onResize((s) => term.resize(s.width, s.height));
  channels.stdin?.on('data', (d: Buffer) => term.write(d));
  const out = channels.stdout;
  // With no encoding, node-pty hands out Buffers (its typings say string).
  term.onData((d: string | Buffer) => {
    if (out === undefined) return;
    if (!out.write(d)) {
      term.pause();
      out.once('drain', () => term.resume());
    }
  });
  return new Promise((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      const ended = out ? new Promise<void>((r) => out.end(r)) : Promise.resolve();
      void ended.then(() => resolve(signal ? 128 + signal : exitCode));
    });
  });
}

export interface AttachTarget {
  /** The container's directory: conmon's `attach` socket and `ctl` pipe are there. */
  dir: string;
  tty: boolean;
  /** The container was created with stdin_once: the attacher's stdin closing closes the container's. */
  stdinOnce: boolean;
}

/** Output an attacher has not taken beyond this ends that attacher: the container's output is never held up. */
const maxAttachBacklog = 4 << 20;
/** conmon reads at most this much per message from the attach socket. */
const attachChunk = 8192;

/**
 * Joins a running container's stdio through conmon's attach socket (a
 * SOCK_SEQPACKET socket: each message is one stream byte, 2 for stdout or 3
 * for stderr, then the data). Resizes go to conmon's control pipe.
 */
export async function runAttach(target: AttachTarget, channels: Channels): Promise<Outcome> {
  const socket = new SeqpacketSocket();
  // The socket's path may exceed the 108 bytes a socket address holds: reach it through an fd of its directory.
  const dirFd = openSync(target.dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      try {
        socket.connect(`/proc/self/fd/${dirFd}/attach`, () => resolve());
      } catch (err) {
        reject(err as Error);
      }
    });
  } catch (err) {
    return { error: `cannot attach: conmon's attach socket: ${(err as Error).message}` };
  } finally {
    closeSync(dirFd);
  }
  if (target.tty) channels.onResize((s) => void conmonControl(target.dir, `1 ${s.height} ${s.width}\n`).catch(() => undefined));
  return new Promise((resolve) => {
    let done = false;
    const end = (outcome: Outcome) => {
      if (done) return;
      done = true;
      socket.destroy();
      void Promise.all([channels.stdout, channels.stderr].map((w) => (w ? new Promise<void>((r) => w.end(r)) : undefined))).then(() => resolve(outcome));
    };
    socket.on('data', (message: Buffer) => {
      const target = message[0] === 2 ? channels.stdout : message[0] === 3 ? channels.stderr : undefined;
      if (target === undefined || message.length < 2) return;
      target.write(message.subarray(1));
      if (target.writableLength > maxAttachBacklog) end({ error: 'the attach client does not read its output: disconnected' });
    });
    socket.on('end', () => end({ exitCode: 0 }));
    socket.on('close', () => end({ exitCode: 0 }));
    socket.on('error', (err: Error) => end({ error: `attach: ${err.message}` }));
    channels.gone.addEventListener('abort', () => end({ exitCode: 0 }));
    // The native socket throws when used after it closed: writes stop with the session.
    const guarded = (fn: () => void) => {
      if (done) return;
      try {
        fn();
      } catch (err) {
        end({ error: `attach: ${(err as Error).message}` });
      }
    };
    channels.stdin?.on('data', (d: Buffer) => {
      for (let at = 0; at < d.length; at += attachChunk) guarded(() => socket.write(d.subarray(at, at + attachChunk)));
    });
    // The client closing stdin closes the container's, when it was created with stdin_once (without a
    // terminal); otherwise it ends the attach and the container's stdin stays open, as containerd does.
    channels.stdin?.on('end', () => (target.stdinOnce && !target.tty ? guarded(() => socket.end()) : end({ exitCode: 0 })));
  });
}

/** Writes one message to conmon's control pipe (`1 rows cols`: resize; `2 0 0`: reopen the log). */
export async function conmonControl(dir: string, message: string): Promise<void> {
  const handle = await open(join(dir, 'ctl'), constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    await handle.write(message);
  } finally {
    await handle.close();
  }
}
