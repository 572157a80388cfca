import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Bus } from '@berth/bus';
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
