import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Bus } from '@berth/bus';
import { isCategory, NotFoundError } from '@berth/errors';
import type { Store } from '@berth/store-api';
import { ImageResolver } from './images.js';

test('an image config is read from the store once, the image record every time', async () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const calls = { getImage: 0, read: 0 };
  const bytes = Buffer.from(JSON.stringify({ config: { Cmd: ['/pause'] } }));
  const store = {
    getImage: async () => {
      calls.getImage++;
      return { id: digest, names: [], topChainId: '', size: 1, pinned: false, manifestDigest: '' };
    },
    content: {
      info: async () => ({ digest, size: bytes.length, labels: {}, createdAt: new Date(), updatedAt: new Date() }),
      read: async function* () {
        calls.read++;
        yield bytes;
      },
    },
  } as unknown as Store;
  const resolver = new ImageResolver(store, {} as Bus, 'example.com/pause:1', false);
  const first = await resolver.resolve('example.com/pause:1');
  const second = await resolver.resolve('example.com/pause:1');
  assert.deepEqual(second.config, { config: { Cmd: ['/pause'] } });
  assert.equal(first.config, second.config);
  assert.deepEqual(calls, { getImage: 2, read: 1 });
});

test('an image is found by reference, else by id or a unique id prefix (the store\'s lookup), as containerd resolves a container\'s image', async () => {
  const digest = `sha256:7822235529f0c${'0'.repeat(51)}`;
  const asked: string[] = [];
  const bytes = Buffer.from(JSON.stringify({ config: {} }));
  const record = { id: digest, names: [{ name: 'example.com/app:1', kind: 'tag' }], topChainId: '', size: 1, pinned: false, manifestDigest: '' };
  const store = {
    getImage: async (ref: string) => {
      asked.push(ref);
      if (ref === 'example.com/app:1' || ref === digest || digest.slice(7).startsWith(ref)) return record;
      throw new NotFoundError(`image ${ref} not found`);
    },
    content: {
      info: async () => ({ digest, size: bytes.length, labels: {}, createdAt: new Date(), updatedAt: new Date() }),
      read: async function* () {
        yield bytes;
      },
    },
  } as unknown as Store;
  const resolver = new ImageResolver(store, {} as Bus, 'example.com/pause:1', false);
  assert.equal((await resolver.resolve('example.com/app:1')).name, 'example.com/app:1');
  assert.deepEqual(asked.splice(0), ['example.com/app:1']);
  const byPrefix = await resolver.resolve('7822235529f0c');
  assert.equal(byPrefix.record.id, digest);
  assert.equal(byPrefix.name, digest, 'named by its id');
  assert.deepEqual(asked.splice(0), ['docker.io/library/7822235529f0c:latest', '7822235529f0c'], 'the reference first');
  await assert.rejects(resolver.resolve('example.com/none:1'), (e: Error) => isCategory(e, 'not-found'));
  await assert.rejects(resolver.resolve('Not A Reference'), (e: Error) => isCategory(e, 'invalid-argument'));
});
