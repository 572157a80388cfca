// Streaming end to end: CRI Exec, Attach and PortForward URLs driven as the
// kubelet would, over WebSocket (Berth's client) and over SPDY (the real
// kubectl, through a stand-in API server that proxies to the URL as the
// kubelet does), against real containers.
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { imageSpec, portForwardConnection, streamExec } from '@berth/client';
import { isCategory } from '@berth/errors';
import { buildImage, pushImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, startFakeApiServer, startRegistry, startStack, waitFor, type FakeApiServerHandle, type RegistryHandle, type StackHandle } from '@berth/testing';
import pty from 'node-pty';

const execFileAsync = promisify(execFile);
const berthctl = join(resolve(import.meta.dirname, '../..'), 'apps/berthctl/dist/main.js');
let stack: StackHandle;
let registry: RegistryHandle;
let imageName: string;
const logRoot = mkdtempSync('/var/tmp/berth-e2e-stream-logs-');
const tokenTtlSeconds = 3;
const idleTimeoutSeconds = 4;
const maxStreams = 4;

let podId = '';
const ids: Record<'ticker' | 'cat' | 'web', string> = { ticker: '', cat: '', web: '' };
const podConfig = criV1.PodSandboxConfig.fromPartial({
  metadata: { name: 'stream', namespace: 'e2e', uid: 'uid-stream', attempt: 0 },
  hostname: 'stream',
  logDirectory: join(logRoot, 'stream'),
  linux: {},
});

before(async () => {
  registry = await startRegistry();
  const image = await buildImage({ layers: [busyboxRootfs()], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] } });
  await pushImage(registry.url, 'test/busybox', 'streaming', image);
  imageName = `${registry.host}/test/busybox:streaming`;
  stack = await startStack({ extraConfig: ['[streaming]', `tokenTtlSeconds = ${tokenTtlSeconds}`, `idleTimeoutSeconds = ${idleTimeoutSeconds}`, `maxStreamsPerContainer = ${maxStreams}`].join('\n') });
  await stack.cri.image.pullImage({ image: imageSpec(imageName), auth: undefined, sandboxConfig: undefined });
  podId = (await stack.cri.runtime.runPodSandbox({ config: podConfig, runtimeHandler: '' })).podSandboxId;
  const commands = {
    ticker: ['sh', '-c', 'i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done'],
    cat: ['cat'],
    web: ['sh', '-c', 'mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www'],
  };
  for (const name of ['ticker', 'cat', 'web'] as const) {
    const config = criV1.ContainerConfig.fromPartial({ metadata: { name, attempt: 0 }, image: { image: imageName }, command: commands[name], logPath: `${name}.log`, stdin: name === 'cat' });
    ids[name] = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config, sandboxConfig: podConfig })).containerId;
    await stack.cri.runtime.startContainer({ containerId: ids[name] });
  }
});

after(async () => {
  if (podId) await stack?.cri.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await stack?.stop();
  await registry?.stop();
  rmSync(logRoot, { recursive: true, force: true });
});

/** A Writable collecting what it is given. */
function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
    text: () => Buffer.concat(chunks).toString(),
  };
}

const execRequest = (cmd: string[], extra: Partial<criV1.ExecRequest> = {}) => criV1.ExecRequest.fromPartial({ containerId: ids.ticker, cmd, stdout: true, stderr: true, ...extra });

/** Processes in the pod (its PID namespace is shared), as `ps` lists them, without the `ps` itself. */
async function podProcesses(): Promise<string[]> {
  const r = await stack.cri.runtime.execSync({ containerId: ids.ticker, cmd: ['ps', '-o', 'pid,args'], timeout: 10n });
  return Buffer.from(r.stdout)
    .toString()
    .trim()
    .split('\n')
    .slice(1)
    .filter((l) => !/\bps -o pid,args$/.test(l));
}

/** Processes the executor started and still has (runc exec, pty helpers, socat). */
async function executorChildren(): Promise<string[]> {
  const r = await execFileAsync('ps', ['-o', 'pid=,args=', '--ppid', String(stack.pid('executor'))]).catch(() => ({ stdout: '' }));
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n');
}

/** Open file descriptors of the executor (sockets, pipes, ptys included). */
function executorDescriptors(): number {
  return readdirSync(`/proc/${stack.pid('executor')}/fd`).length;
}

/** The body of a plain GET. */
function httpBody(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('streaming over WebSocket', () => {
  test('exec echo: output on stdout and stderr, exit code 0; sh -c "exit 3": exit code 3', async () => {
    const out = collector();
    const err = collector();
    const { url } = await stack.cri.runtime.exec(execRequest(['sh', '-c', 'echo hello; echo oops >&2']));
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{32}$/);
    const r = await streamExec(url, { stdout: out.stream, stderr: err.stream }).done;
    assert.equal(r.exitCode, 0);
    assert.equal(out.text(), 'hello\n');
    assert.equal(err.text(), 'oops\n');
    const three = await streamExec((await stack.cri.runtime.exec(execRequest(['sh', '-c', 'exit 3']))).url).done;
    assert.equal(three.exitCode, 3);
    assert.equal(three.status.reason, 'NonZeroExitCode');
  });

  test('a command that does not exist is a failure with the runtime’s reason', async () => {
    const err = collector();
    await assert.rejects(streamExec((await stack.cri.runtime.exec(execRequest(['no-such-command']))).url, { stderr: err.stream }).done, (e: Error & { status?: { message?: string } }) => /executable file not found/.test(e.status?.message ?? e.message));
  });

  test('stdin to cat comes back on stdout, and closing stdin ends cat', async () => {
    const out = collector();
    const stdin = new PassThrough();
    const session = streamExec((await stack.cri.runtime.exec(execRequest(['cat'], { stdin: true }))).url, { stdin, stdout: out.stream });
    const big = 'x'.repeat(200_000);
    stdin.write('line one\n');
    stdin.end(`${big}\n`);
    const r = await session.done;
    assert.equal(r.exitCode, 0);
    assert.equal(out.text(), `line one\n${big}\n`);
  });

  test('a TTY exec starts at the client’s size and follows a resize', async () => {
    const out = collector();
    const session = streamExec((await stack.cri.runtime.exec(execRequest(['sh', '-c', 'stty size; read line; stty size'], { tty: true, stdin: true, stderr: false }))).url, { stdout: out.stream });
    session.resize(100, 30);
    await waitFor('the first size', () => (out.text().includes('30 100') ? true : undefined)).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(out.text())}`); });
    session.resize(132, 43);
    await sleep(200);
    await session.write('\r');
    const r = await session.done;
    assert.equal(r.exitCode, 0);
    assert.match(out.text(), /30 100\r\n[\s\S]*43 132\r\n/);
  });

  test('a TTY process that asks for its size at once gets the client’s, every time', async () => {
    // The runtime resizes the container's terminal from its own only after the process starts: the size must be set before.
    // Four at a time (this suite's cap per container), three rounds.
    for (let round = 0; round < 3; round++) {
      const sizes = await Promise.all(
        Array.from({ length: 4 }, async (_, n) => {
          const i = round * 4 + n;
          const out = collector();
          const session = streamExec((await stack.cri.runtime.exec(execRequest(['stty', 'size'], { tty: true, stdin: false, stderr: false }))).url, { stdout: out.stream });
          session.resize(60 + i, 20 + i);
          const r = await session.done;
          return { i, code: r.exitCode, text: out.text() };
        }),
      );
      // The size, exactly; the line's end is "\r\n", or "\r\r\n" when the process writes before runc has switched
      // its own terminal to raw (a separate, cosmetic race), which this test is not about.
      for (const s of sizes) assert.deepEqual([s.code, s.text.replace(/\r+\n$/, '\n')], [0, `${20 + s.i} ${60 + s.i}\n`]);
    }
  });

  test('attach: two clients at once see a running container’s output; stdin reaches a container created with stdin', async () => {
    const a = collector();
    const b = collector();
    const attach = async (out: Writable) => streamExec((await stack.cri.runtime.attach({ containerId: ids.ticker, stdin: false, tty: false, stdout: true, stderr: true })).url, { stdout: out });
    const first = await attach(a.stream);
    const second = await attach(b.stream);
    await waitFor('ticks on both', () => (/tick \d+\n[\s\S]*tick \d+\n/.test(a.text()) && /tick \d+\n[\s\S]*tick \d+\n/.test(b.text()) ? true : undefined));
    first.close();
    second.close();
    await Promise.allSettled([first.done, second.done]);

    const echoed = collector();
    const cat = streamExec((await stack.cri.runtime.attach({ containerId: ids.cat, stdin: true, tty: false, stdout: true, stderr: true })).url, { stdout: echoed.stream });
    await cat.write('through attach\n');
    await waitFor('cat to echo', () => (echoed.text().includes('through attach\n') ? true : undefined));
    cat.close();
    await cat.done.catch(() => undefined);
    await assert.rejects(stack.cri.runtime.attach({ containerId: ids.ticker, stdin: true, tty: false, stdout: true, stderr: false }), (e: Error) => isCategory(e, 'invalid-argument'));
  });

  test('stdin_once: the container’s stdin closes with the attached client’s, and cat exits', async () => {
    const config = criV1.ContainerConfig.fromPartial({ metadata: { name: 'once', attempt: 0 }, image: { image: imageName }, command: ['cat'], logPath: 'once.log', stdin: true, stdinOnce: true });
    const id = (await stack.cri.runtime.createContainer({ podSandboxId: podId, config, sandboxConfig: podConfig })).containerId;
    await stack.cri.runtime.startContainer({ containerId: id });
    const out = collector();
    const session = streamExec((await stack.cri.runtime.attach({ containerId: id, stdin: true, tty: false, stdout: true, stderr: false })).url, { stdout: out.stream });
    await session.write('only once\n');
    await waitFor('the echo', () => (out.text() === 'only once\n' ? true : undefined));
    session.closeStdin();
    const status = await waitFor('cat to exit', async () => {
      const st = (await stack.cri.runtime.containerStatus({ containerId: id, verbose: false })).status;
      return st?.state === criV1.ContainerState.CONTAINER_EXITED ? st : undefined;
    });
    assert.equal(status.exitCode, 0);
    await session.done.catch(() => undefined);
    await stack.cri.runtime.removeContainer({ containerId: id });
  });

  test('port-forward reaches an HTTP server listening only inside the pod', async () => {
    const { url } = await stack.cri.runtime.portForward({ podSandboxId: podId, port: [8080] });
    const conn = portForwardConnection(url, 8080);
    const chunks: Buffer[] = [];
    conn.on('data', (d: Buffer) => chunks.push(d));
    conn.write('GET / HTTP/1.0\r\nHost: pod\r\n\r\n');
    await waitFor('the HTTP answer', () => (Buffer.concat(chunks).toString().includes('hello from the pod') ? true : undefined));
    assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.[01] 200 OK/);
    conn.destroy();
    // A port nothing listens on: the error channel says so.
    const refused = portForwardConnection((await stack.cri.runtime.portForward({ podSandboxId: podId, port: [8081] })).url, 8081);
    const err = await new Promise<Error>((resolve) => refused.on('error', resolve));
    assert.match(err.message, /refused/i);
  });

  test('a URL is good once and expires; a plain request without an upgrade is refused', async () => {
    const { url } = await stack.cri.runtime.exec(execRequest(['true']));
    assert.equal((await streamExec(url).done).exitCode, 0);
    await assert.rejects(streamExec(url).done, /404/);
    assert.equal(await httpStatus(url.replace(/[^/]+$/, 'made-up-token')), 404);
    const plain = (await stack.cri.runtime.exec(execRequest(['true']))).url;
    assert.equal(await httpStatus(plain), 400);
    const late = (await stack.cri.runtime.exec(execRequest(['true']))).url;
    await sleep(tokenTtlSeconds * 1000 + 300);
    await assert.rejects(streamExec(late).done, /404/);
  });

  test('requests are checked before a URL is issued', async () => {
    const code = (c: string) => (e: Error) => isCategory(e, c as Parameters<typeof isCategory>[1]);
    await assert.rejects(stack.cri.runtime.exec(execRequest(['true'], { stdout: false, stderr: false })), code('invalid-argument'));
    await assert.rejects(stack.cri.runtime.exec(execRequest(['true'], { tty: true })), code('invalid-argument'));
    await assert.rejects(stack.cri.runtime.exec(execRequest([])), code('invalid-argument'));
    await assert.rejects(stack.cri.runtime.exec(execRequest(['true'], { containerId: 'f'.repeat(64) })), code('not-found'));
    await assert.rejects(stack.cri.runtime.portForward({ podSandboxId: podId, port: [70000] }), code('invalid-argument'));
  });

  test('a client that vanishes mid-stream leaves no process or descriptor behind; sessions per container are capped', async () => {
    const baseline = await podProcesses();
    const fds = executorDescriptors();
    const out = collector();
    const session = streamExec((await stack.cri.runtime.exec(execRequest(['sh', '-c', 'sleep 1000 & while :; do echo x; sleep 0.05; done']))).url, { stdout: out.stream });
    await waitFor('output', () => (out.text().length > 4 ? true : undefined));
    assert.ok((await podProcesses()).some((p) => /sleep 1000/.test(p)));
    session.close();
    await session.done.catch(() => undefined);
    await waitFor('the exec and its child to be gone', async () => ((await podProcesses()).length === baseline.length ? true : undefined));
    await waitFor('no helper process left in the executor', async () => ((await executorChildren()).length === 0 ? true : undefined));

    const held = [];
    for (let i = 0; i < maxStreams; i++) held.push(streamExec((await stack.cri.runtime.exec(execRequest(['sleep', '30']))).url));
    await waitFor('the sessions to run', async () => ((await podProcesses()).filter((p) => /sleep 30/.test(p)).length === maxStreams ? true : undefined));
    await assert.rejects(stack.cri.runtime.exec(execRequest(['true'])), (e: Error) => isCategory(e, 'resource-exhausted'));
    for (const s of held) s.close();
    await Promise.allSettled(held.map((s) => s.done));
    await waitFor('the sessions to end', async () => ((await podProcesses()).length === baseline.length ? true : undefined));
    await stack.cri.runtime.exec(execRequest(['true']));
    await waitFor(`the executor's descriptors back at ${fds}`, () => (executorDescriptors() <= fds ? true : undefined));
  });

  test('an idle stream is closed after the idle timeout, and its process with it', async () => {
    const session = streamExec((await stack.cri.runtime.exec(execRequest(['sleep', '300']))).url);
    const started = Date.now();
    await assert.rejects(session.done);
    const took = (Date.now() - started) / 1000;
    assert.ok(took >= idleTimeoutSeconds - 0.5 && took < idleTimeoutSeconds + 5, `closed after ${took} s`);
    await waitFor('sleep 300 to be gone', async () => ((await podProcesses()).some((p) => /sleep 300/.test(p)) ? undefined : true));
  });
});

describe('streaming over SPDY, with kubectl through an API server that proxies as the kubelet does', () => {
  let api: FakeApiServerHandle;
  before(async () => {
    api = await startFakeApiServer(stack.cri);
    api.addPod({ name: 'stream', podSandboxId: podId, containers: [{ name: 'ticker', id: ids.ticker }, { name: 'cat', id: ids.cat, stdin: true }, { name: 'web', id: ids.web }] });
  });
  after(() => api?.stop());

  test('kubectl exec: stdout, stderr and the exit code', async () => {
    const ok = await api.kubectl(['exec', 'stream', '-c', 'ticker', '--', 'sh', '-c', 'echo hello; echo oops >&2']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'hello\n');
    assert.equal(ok.stderr, 'oops\n');
    const three = await api.kubectl(['exec', 'stream', '-c', 'ticker', '--', 'sh', '-c', 'exit 3']);
    assert.equal(three.code, 3, three.stderr);
    assert.deepEqual(api.upgrades.at(-1)?.headers.upgrade, 'SPDY/3.1');
  });

  test('kubectl exec -i: stdin to cat, ended by the end of kubectl’s input', async () => {
    const r = await api.kubectl(['exec', '-i', 'stream', '-c', 'ticker', '--', 'cat'], { input: 'piped through SPDY\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'piped through SPDY\n');
  });

  test('kubectl exec -it on a terminal: the size follows the terminal’s, resize included', async () => {
    const term = pty.spawn(api.kubectlCommand([])[0]!, [...api.kubectlCommand([]).slice(1), 'exec', '-it', 'stream', '-c', 'ticker', '--', 'sh', '-c', 'stty size; read line; stty size; exit 5'], { cols: 100, rows: 30 });
    let out = '';
    term.onData((d) => (out += d));
    const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
    await waitFor('the first size', () => (out.includes('30 100') ? true : undefined)).catch((e: Error) => {
      // What kubectl asked the CRI for tells a client-side TTY decision from a runtime one.
      throw new Error(`${e.message}: ${JSON.stringify(out)}; CRI request ${JSON.stringify(api.calls.at(-1)?.request)}`);
    });
    term.resize(132, 43);
    await sleep(300);
    term.write('\r');
    assert.equal(await exited, 5, out);
    assert.match(out, /43 132/);
  });

  test('kubectl attach sees the running container’s output', async () => {
    const child = api.spawnKubectl(['attach', 'stream', '-c', 'ticker']);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('two ticks', () => (/tick \d+\n[\s\S]*tick \d+\n/.test(out) ? true : undefined));
    child.kill('SIGKILL');
  });

  test('kubectl port-forward reaches the pod’s HTTP server', async () => {
    const child = api.spawnKubectl(['port-forward', 'stream', ':8080']);
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).on('line', (l) => /Forwarding from 127/.test(l) && resolve(l)));
    const local = /127\.0\.0\.1:(\d+) -> 8080/.exec(line)?.[1];
    assert.ok(local, line);
    for (let i = 0; i < 2; i++) assert.equal(await httpBody(`http://127.0.0.1:${local}/`), 'hello from the pod\n');
    child.kill('SIGKILL');
  });

  test('kubectl killed with SIGKILL mid-stream leaves no process behind', async () => {
    const baseline = await podProcesses();
    const child = api.spawnKubectl(['exec', 'stream', '-c', 'ticker', '--', 'sh', '-c', 'sleep 1000 & while :; do echo y; sleep 0.05; done']);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('output', () => (out.length > 4 ? true : undefined));
    assert.ok((await podProcesses()).some((p) => /sleep 1000/.test(p)));
    child.kill('SIGKILL');
    await waitFor('the exec and its child to be gone', async () => ((await podProcesses()).length === baseline.length ? true : undefined));
    await waitFor('no helper process left in the executor', async () => ((await executorChildren()).length === 0 ? true : undefined));
  });
});

describe('berthctl', () => {
  test('exec -it runs on a terminal at the terminal’s size', async () => {
    const term = pty.spawn(process.execPath, [berthctl, '-r', stack.socket, 'exec', '-it', ids.ticker, 'sh', '-c', 'stty size; read line; echo got $line; exit 6'], { cols: 90, rows: 20 });
    let out = '';
    term.onData((d) => (out += d));
    const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
    await waitFor('the size', () => (out.includes('20 90') ? true : undefined));
    term.write('typed\r');
    assert.equal(await exited, 6, out);
    assert.match(out, /got typed/);
  });

  test('exec prints the output and exits with the command’s code; port-forward serves a local port', async () => {
    const r = await execFileAsync(process.execPath, [berthctl, '-r', stack.socket, 'exec', ids.ticker, 'sh', '-c', 'echo via berthctl; exit 4']).then(
      () => assert.fail('exit code 4 expected'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(r.code, 4);
    assert.equal(r.stdout, 'via berthctl\n');

    const forward = spawn(process.execPath, [berthctl, '-r', stack.socket, 'port-forward', podId, ':8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: forward.stdout }).once('line', resolve));
      const local = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(line)?.[1];
      assert.ok(local, line);
      for (let i = 0; i < 2; i++) assert.equal(await httpBody(`http://127.0.0.1:${local}/`), 'hello from the pod\n');
    } finally {
      forward.kill('SIGINT');
    }
  });
});

