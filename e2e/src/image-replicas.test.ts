// Several image-service replicas share pulls through the NATS queue group;
// killing the replica doing a pull makes the CRI frontend ask again, and
// another replica finishes it with verified content.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { imageSpec } from '@berth/client';
import { buildImage, type BuiltImage } from '@berth/oci';
import { RemoteStore } from '@berth/store-api';
import { startFakeRegistry, startStack, type FakeRegistryHandle, type StackHandle } from '@berth/testing';

let stack: StackHandle;
let fake: FakeRegistryHandle;
let image: BuiltImage;
let nc: NatsConnection;

before(async () => {
  image = await buildImage({ layers: [[{ type: 'file', path: '/payload', content: randomBytes(2 * 1024 * 1024) }]] });
  const layer = image.manifest.layers[0]!;
  fake = await startFakeRegistry([
    async (req, res) => {
      const m = /^\/v2\/slow\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
      if (m === null) return false;
      if (m[1] === 'manifests') {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(image.manifestBytes);
        return true;
      }
      const bytes = image.blobs.get(m[2]!);
      if (bytes === undefined) return false;
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(from > 0 ? 206 : 200, { 'content-length': bytes.length - from });
      if (m[2] !== layer.digest) {
        res.end(bytes.subarray(from));
        return true;
      }
      // The layer trickles: 64 KiB every 100 ms, about three seconds in all.
      for (let at = from; at < bytes.length && !res.destroyed; at += 64 * 1024) {
        res.write(bytes.subarray(at, Math.min(bytes.length, at + 64 * 1024)));
        await new Promise((r) => setTimeout(r, 100));
      }
      res.end();
      return true;
    },
  ]);
  stack = await startStack({ extraConfig: '[image]\nreplicas = 2\n' });
  // berthctl's login: it may listen to pull progress, as this test does.
  const { user, password } = JSON.parse(readFileSync(join(stack.dir, 'run/bus/berthctl.json'), 'utf8')) as { user: string; password: string };
  nc = await connect({ servers: readFileSync(join(stack.dir, 'run/nats.url'), 'utf8').trim(), user, pass: password });
});
after(async () => {
  await nc?.close();
  await stack?.stop();
  await fake?.stop();
});

test('two replicas serve pulls; killing the one pulling hands the pull to the other', async () => {
  const pids = [stack.pid('image'), Number(readFileSync(join(stack.dir, 'run/pids/image-1.pid'), 'utf8'))];
  const name = `${fake.host}/slow:v1`;
  // Who is pulling? The heartbeat's envelope names its process.
  const worker = new Promise<number>((resolve) => {
    const sub = nc.subscribe('berth.events.image.progress', {
      callback: (_e, msg) => {
        const event = msg.json<{ source: string; payload: { image: string; phase: string } }>();
        const m = /berth-image-(\d+)/.exec(event.source);
        if (m && event.payload.image === name && event.payload.phase === 'working') {
          sub.unsubscribe();
          resolve(Number(m[1]));
        }
      },
    });
  });
  const pulling = stack.cri.image.pullImage({ image: imageSpec(name), auth: undefined, sandboxConfig: undefined }, { timeoutMs: 60_000 });
  const victim = await worker;
  assert.ok(pids.includes(victim), `the worker ${victim} is one of the replicas ${pids.join(', ')}`);
  process.kill(victim, 'SIGKILL');
  const started = Date.now();
  const { imageRef } = await pulling;
  assert.equal(imageRef, image.configDigest);
  const finishers = stack
    .output()
    .split('\n')
    .filter((l) => l.includes('"msg":"pulled"') && l.includes(`"image":"${name}"`))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
  assert.ok(finishers.length > 0 && finishers.every((pid) => pid !== victim), `finished by a surviving replica, not ${victim}: ${finishers.join(', ')}`);
  assert.ok(Date.now() - started < 45_000);
  const store = new RemoteStore(`unix://${join(stack.dir, 'run/internal/store.sock')}`);
  try {
    const record = await store.getImage(imageRef);
    const layer = await store.content.info(image.manifest.layers[0]!.digest);
    assert.equal(layer.size, image.manifest.layers[0]!.size, 'the layer blob is whole');
    assert.equal((await store.snapshots.stat(record.topChainId)).kind, 'committed');
  } finally {
    await store.close();
  }
});
