// The foundation, end to end: a real Berth stack (berthd, nats-server and the
// four services) called over its real CRI socket.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client, credentials, status } from '@grpc/grpc-js';
import { connect as natsConnect } from 'nats';
import { isCategory } from '@berth/errors';
import { criV1 } from '@berth/proto';
import { startStack, type StackHandle, type StackService } from '@berth/testing';
import { decodeStringFields, encodeStringField } from './wire.js';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const berthctl = join(repoRoot, 'apps/berthctl/dist/main.js');

let stack: StackHandle;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

async function conditions(): Promise<Record<string, criV1.RuntimeCondition>> {
  const s = await stack.cri.runtime.status({ verbose: false });
  return Object.fromEntries((s.status?.conditions ?? []).map((c) => [c.type, c]));
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Gone: no such process, or only its zombie is left. */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
}

function rawCall(path: string, body: Buffer): Promise<{ code: number; details: string; response?: Buffer }> {
  const client = new Client(`unix://${stack.socket}`, credentials.createInsecure());
  return new Promise((resolvePromise) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, (err, response) => {
      client.close();
      resolvePromise(err ? { code: err.code, details: err.details } : { code: status.OK, details: '', ...(response ? { response } : {}) });
    });
  });
}

describe('the CRI socket', () => {
  test('Version names berth and the v1 API', async () => {
    const v = await stack.cri.runtime.version({ version: '0.1.0' });
    assert.equal(v.runtimeName, 'berth');
    assert.equal(v.runtimeApiVersion, 'v1');
    assert.equal(v.version, '0.1.0');
    assert.match(v.runtimeVersion, /^\d+\.\d+\.\d+/);
  });

  test('a client built only from the upstream field numbers gets the same Version answer', async () => {
    const r = await rawCall('/runtime.v1.RuntimeService/Version', encodeStringField(1, '0.1.0'));
    assert.equal(r.code, status.OK);
    const fields = decodeStringFields(r.response ?? Buffer.alloc(0));
    const v = await stack.cri.runtime.version({ version: '0.1.0' });
    assert.deepEqual([fields.get(1), fields.get(2), fields.get(3), fields.get(4)], [v.version, 'berth', v.runtimeVersion, 'v1']);
  });

  test('the socket is root-owned with mode 0660', () => {
    const st = statSync(stack.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 0);
  });

  test('Status reports the runtime and the network ready, and verbose info describes every service', async () => {
    const c = await conditions();
    assert.equal(c['RuntimeReady']?.status, true, c['RuntimeReady']?.message);
    assert.equal(c['NetworkReady']?.status, true, c['NetworkReady']?.message);
    const s = await stack.cri.runtime.status({ verbose: true });
    const services = JSON.parse(s.info['services'] ?? '{}') as Record<string, { ok: boolean; info?: { pid: number } }>;
    for (const name of ['store', 'executor', 'image'] as const) {
      assert.equal(services[name]?.ok, true, name);
      assert.equal(services[name]?.info?.pid, stack.pid(name), `${name} pid`);
    }
    assert.equal((JSON.parse(s.info['config'] ?? '{}') as { socket?: string }).socket, stack.socket);
  });

  test('RuntimeConfig reports the cgroup driver in use', async () => {
    const r = await stack.cri.runtime.runtimeConfig({});
    const expected = existsSync('/run/systemd/system') ? criV1.CgroupDriver.SYSTEMD : criV1.CgroupDriver.CGROUPFS;
    assert.equal(r.linux?.cgroupDriver, expected);
  });

  test('an RPC whose issue has not landed answers UNIMPLEMENTED, never a fake success', async () => {
    await assert.rejects(stack.cri.runtime.checkpointContainer({ containerId: 'x', location: '/tmp/x', timeout: 0n }), (err: Error) => isCategory(err, 'unimplemented') && /CheckpointContainer/.test(err.message));
  });

  test('a malformed request gets INVALID_ARGUMENT', async () => {
    // Field 1 claims 200 bytes that are not there.
    const r = await rawCall('/runtime.v1.RuntimeService/Status', Buffer.from([0x0a, 0xc8, 0x01, 0x01]));
    assert.equal(r.code, status.INVALID_ARGUMENT, r.details);
    const unknown = await rawCall('/runtime.v1.RuntimeService/NoSuchMethod', Buffer.alloc(0));
    assert.equal(unknown.code, status.UNIMPLEMENTED);
  });

  test('berthctl version and info speak to the socket', async () => {
    const version = await run(process.execPath, [berthctl, '--runtime-endpoint', stack.socket, 'version']);
    assert.match(version.stdout, /^RuntimeName:\s+berth$/m);
    const info = JSON.parse((await run(process.execPath, [berthctl, '-r', stack.socket, 'info'])).stdout) as { status: { conditions: Array<{ type: string; status: boolean }> } };
    assert.deepEqual(info.status.conditions.map((c) => [c.type, c.status]), [['RuntimeReady', true], ['NetworkReady', true]]);
    await assert.rejects(run(process.execPath, [berthctl, '-r', join(stack.dir, 'nope.sock'), '--timeout', '2', 'version']), (err: { stderr: string; code: number }) => err.code === 1 && /unavailable/.test(err.stderr));
  });
});

describe('operating the stack', () => {
  test('NetworkReady follows the CNI config directory', async () => {
    const conf = join(stack.dir, 'cni/10-berth.conflist');
    renameSync(conf, `${conf}.off`);
    try {
      const c = await conditions();
      assert.equal(c['NetworkReady']?.status, false);
      assert.equal(c['NetworkReady']?.reason, 'NetworkPluginNotReady');
      assert.match(c['NetworkReady']?.message ?? '', /no network config found/);
      assert.equal(c['RuntimeReady']?.status, true, 'the runtime itself is still ready');
    } finally {
      renameSync(`${conf}.off`, conf);
    }
    assert.equal((await conditions())['NetworkReady']?.status, true);
  });

  for (const service of ['store', 'executor', 'image'] as StackService[]) {
    test(`a killed ${service} service shows in Status and is restarted`, async () => {
      const before = stack.pid(service);
      process.kill(before, 'SIGKILL');
      const down = await eventually(`${service} to be reported down`, async () => {
        const c = (await conditions())['RuntimeReady'];
        return c?.status === false ? c : undefined;
      });
      assert.match(down.message, new RegExp(`${service} service unavailable`));
      await eventually(`${service} to come back`, async () => ((await conditions())['RuntimeReady']?.status === true ? true : undefined));
      assert.notEqual(stack.pid(service), before, 'a new process');
    });
  }

  test('a killed CRI frontend is restarted and takes over its stale socket', async () => {
    const before = stack.pid('cri');
    process.kill(before, 'SIGKILL');
    await eventually('the CRI to answer again', async () => (await stack.cri.runtime.version({ version: '0.1.0' })).runtimeName);
    assert.notEqual(stack.pid('cri'), before);
    assert.equal(statSync(stack.socket).mode & 0o777, 0o660);
  });

  test('the bus admits only logins berthd made, and no password is on a command line', async () => {
    const url = readFileSync(join(stack.dir, 'run/nats.url'), 'utf8').trim();
    await assert.rejects(natsConnect({ servers: url, maxReconnectAttempts: 0 }), (err: Error & { code?: string }) => err.code === 'AUTHORIZATION_VIOLATION');
    assert.equal(statSync(join(stack.dir, 'run/bus')).mode & 0o777, 0o700);
    const { password } = JSON.parse(readFileSync(join(stack.dir, 'run/bus/store.json'), 'utf8')) as { password: string };
    assert.equal(statSync(join(stack.dir, 'run/bus/store.json')).mode & 0o777, 0o600);
    const nc = await natsConnect({ servers: url, user: 'store', pass: password, maxReconnectAttempts: 0 });
    await nc.close();
    const { stdout } = await run('ps', ['-eo', 'args']);
    assert.ok(!stdout.includes(password), 'no password in any argv');
  });

  test('a second Berth on a live socket fails clearly and does not steal it', async () => {
    const second = await run(process.execPath, [join(repoRoot, 'apps/berthd/dist/main.js')], { env: { ...process.env, BERTH_CONFIG: stack.configPath } }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another Berth is already serving on/);
    assert.equal((await stack.cri.runtime.version({ version: '0.1.0' })).runtimeName, 'berth');
  });

  test('SIGKILL of berthd: its services and its NATS server stop on their own', async () => {
    const other = await startStack();
    try {
      const pids = (['store', 'executor', 'image', 'cri'] as StackService[]).map((s) => other.pid(s));
      const nats = Number(/nats:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(join(other.dir, 'run/nats.url'), 'utf8'))?.[1]);
      other.process.kill('SIGKILL');
      for (const pid of pids) await eventually(`service ${pid} to exit`, async () => (processGone(pid) ? true : undefined));
      await eventually('the NATS server to stop listening', async () => ((await portOpen(nats)) ? undefined : true));
    } finally {
      await other.stop();
    }
  });

  test('SIGTERM stops every process of the stack', async () => {
    const pids = (['store', 'executor', 'image', 'cri'] as StackService[]).map((s) => stack.pid(s));
    const exited = new Promise<number | null>((r) => stack.process.once('exit', (code) => r(code)));
    stack.process.kill('SIGTERM');
    assert.equal(await exited, 0);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'service process gone');
  });
});
