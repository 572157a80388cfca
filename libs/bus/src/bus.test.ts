import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { isCategory, NotFoundError } from '@berth/errors';
import { createLogger } from '@berth/observability';
import { Bus, eventSubject, requestSubject, startNatsServer, type NatsServerHandle } from './index.js';

const logger = createLogger({ service: 'test', level: 'silent' });
let nats: NatsServerHandle;
let a: Bus;
let b: Bus;
before(async () => {
  nats = await startNatsServer();
  a = await Bus.connect({ url: nats.url, name: 'a', logger });
  b = await Bus.connect({ url: nats.url, name: 'b', logger });
});
after(async () => {
  await a.close();
  await b.close();
  await nats.stop();
});

const echo = requestSubject<{ text: string }, { text: string; by: string }>('berth.test.echo');
const lookup = requestSubject<{ id: string }, { id: string }>('berth.test.lookup');
const happened = eventSubject<{ n: number }>('berth.events.test.happened');

test('a request is answered by exactly one member of a queue group', async () => {
  const seen: string[] = [];
  const s1 = a.serve(echo, async (p) => (seen.push('a'), { text: p.text, by: 'a' }), { queue: 'g' });
  const s2 = b.serve(echo, async (p) => (seen.push('b'), { text: p.text, by: 'b' }), { queue: 'g' });
  await a.connection.flush();
  await b.connection.flush();
  for (let i = 0; i < 10; i++) assert.equal((await a.request(echo, { text: `t${i}` })).text, `t${i}`);
  assert.equal(seen.length, 10);
  s1.unsubscribe();
  s2.unsubscribe();
});

test('a remote error keeps its category; nobody listening is unavailable', async () => {
  const s = b.serve(lookup, async (p) => {
    throw new NotFoundError(`no ${p.id}`);
  });
  await b.connection.flush();
  await assert.rejects(a.request(lookup, { id: 'x' }), (err: Error) => isCategory(err, 'not-found') && err.message === 'no x');
  s.unsubscribe();
  await b.connection.flush();
  await assert.rejects(a.request(lookup, { id: 'x' }, { timeoutMs: 2000 }), (err: Error) => isCategory(err, 'unavailable'));
});

test('events reach every subscriber in an envelope naming the source', async () => {
  const got: Array<{ source: string; n: number }> = [];
  const done = new Promise<void>((resolve) => {
    b.subscribe(happened, (e) => {
      got.push({ source: e.source, n: e.payload.n });
      if (got.length === 2) resolve();
    });
  });
  await b.connection.flush();
  a.publish(happened, { n: 1 });
  a.publish(happened, { n: 2 });
  await done;
  assert.deepEqual(got, [{ source: 'a', n: 1 }, { source: 'a', n: 2 }]);
});
