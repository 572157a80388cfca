import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { createLogger } from '@berth/observability';
import { Bus, readBusCredentials, startNatsServer, subjects, writeBusAuth, type BusAuthFiles, type BusUser, type NatsServerHandle } from './index.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'berth-bus-auth-'));
let auth: BusAuthFiles;
let nats: NatsServerHandle;
const open: NatsConnection[] = [];

before(async () => {
  auth = writeBusAuth(join(dir, 'bus'));
  nats = await startNatsServer({ configFile: auth.configFile });
});
after(async () => {
  for (const nc of open) await nc.close().catch(() => undefined);
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function as(user: BusUser): Promise<NatsConnection> {
  const { password } = readBusCredentials(auth.credentialsFile(user));
  const nc = await connect({ servers: nats.url, user, pass: password, maxReconnectAttempts: 0, inboxPrefix: `_INBOX.${user}` });
  open.push(nc);
  return nc;
}

/** The next permissions violation the server reports on `nc`. */
async function violation(nc: NatsConnection): Promise<string> {
  for await (const s of nc.status()) {
    const context = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
    if (s.type === 'error' && s.data === 'PERMISSIONS_VIOLATION' && context !== undefined) return `${context.operation} to "${context.subject}"`;
  }
  return 'closed';
}

test('the secrets are in 0600 files in a 0700 directory, and not on the command line', () => {
  assert.equal(statSync(join(dir, 'bus')).mode & 0o777, 0o700);
  assert.equal(statSync(auth.configFile).mode & 0o777, 0o600);
  for (const user of ['store', 'executor', 'image', 'cri', 'berthctl'] as const) assert.equal(statSync(auth.credentialsFile(user)).mode & 0o777, 0o600);
  const { password } = readBusCredentials(auth.credentialsFile('cri'));
  assert.ok(password.length >= 40);
  const argv = readFileSync(`/proc/${nats.process.pid}/cmdline`, 'utf8');
  assert.ok(!argv.includes(password), 'no password in argv');
  assert.match(argv, /-c\0/);
});

test('a connection without credentials, or with a wrong password, is refused', async () => {
  await assert.rejects(connect({ servers: nats.url, maxReconnectAttempts: 0 }), (err: Error & { code?: string }) => err.code === 'AUTHORIZATION_VIOLATION');
  await assert.rejects(connect({ servers: nats.url, user: 'cri', pass: 'guess', maxReconnectAttempts: 0 }), (err: Error & { code?: string }) => err.code === 'AUTHORIZATION_VIOLATION');
});

test('with the store credentials, publishing a container event is refused, and no one receives it', async () => {
  const cri = await as('cri');
  const got: string[] = [];
  cri.subscribe(subjects.containerEvent.subject, { callback: (_e, m) => got.push(m.string()) });
  await cri.flush();
  const store = await as('store');
  const refused = violation(store);
  store.publish(subjects.containerEvent.subject, '{"forged":true}');
  await store.flush();
  assert.match(await refused, /publish to "berth\.events\.container"/i);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, []);
});

test('with the store credentials, subscribing to berth.image.> is refused', async () => {
  const store = await as('store');
  const err = await new Promise<Error & { code?: string }>((resolve) => {
    store.subscribe('berth.image.>', { callback: (e) => e && resolve(e) });
  });
  assert.equal(err.code, 'PERMISSIONS_VIOLATION');
  assert.match(err.message, /subscription to "berth\.image\.>"/i);
});

test('image replicas answer in their queue group only; the CRI requests and gets the replies', async () => {
  const image = await as('image');
  const err = await new Promise<Error & { code?: string }>((resolve) => {
    image.subscribe(subjects.imagePull.subject, { callback: (e) => e && resolve(e) });
  });
  assert.equal(err.code, 'PERMISSIONS_VIOLATION', 'outside the queue group');
  const replicas = await Promise.all([0, 1].map(async (n) => {
    const { password } = readBusCredentials(auth.credentialsFile('image'));
    const bus = await Bus.connect({ url: nats.url, name: `image-${n}`, logger, credentials: { user: 'image', password } });
    bus.serve(subjects.imageInfo, async () => ({ version: 't', pid: process.pid, replica: String(n) }), { queue: 'image' });
    await bus.connection.flush();
    return bus;
  }));
  const cri = await Bus.connect({ url: nats.url, name: 'cri', logger, credentials: readBusCredentials(auth.credentialsFile('cri')) });
  try {
    for (let i = 0; i < 4; i++) assert.equal((await cri.request(subjects.imageInfo, {}, { timeoutMs: 2000 })).version, 't');
    // The executor may not read the CRI's replies.
    const executor = await as('executor');
    const refused = await new Promise<Error & { code?: string }>((resolve) => {
      executor.subscribe('_INBOX.cri.>', { callback: (e) => e && resolve(e) });
    });
    assert.equal(refused.code, 'PERMISSIONS_VIOLATION');
  } finally {
    await cri.close();
    for (const r of replicas) await r.close();
  }
});
