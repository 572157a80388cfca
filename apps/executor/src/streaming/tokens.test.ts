import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { encodeOutcome, parseResizes, type TerminalSize } from './channels.js';
import { TokenCache } from './tokens.js';

test('a streaming token is good once, and not after it expires', () => {
  let now = 1000;
  const cache = new TokenCache<string>(60_000, () => now);
  const a = cache.issue('a');
  const b = cache.issue('b');
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(cache.consume(a), 'a');
  assert.equal(cache.consume(a), undefined, 'used');
  assert.equal(cache.consume('made-up'), undefined, 'unknown');
  now += 60_000;
  assert.equal(cache.consume(b), undefined, 'expired');
});

test('at most 1000 requests wait for their connection', () => {
  const cache = new TokenCache<number>(60_000);
  for (let i = 0; i < 1000; i++) cache.issue(i);
  assert.throws(() => cache.issue(1000), (e: Error) => isCategory(e, 'resource-exhausted'));
});

test('resize messages: concatenated JSON, split anywhere, bad sizes dropped', () => {
  const sizes: TerminalSize[] = [];
  let rest = parseResizes('{"Width":80,"Height":24}\n{"Width":1', (s) => sizes.push(s));
  rest = parseResizes(`${rest}00,"Height":40}{"Width":-1,"Height":3}{"Width":"x"}`, (s) => sizes.push(s));
  assert.equal(rest, '');
  assert.deepEqual(sizes, [
    { width: 80, height: 24 },
    { width: 100, height: 40 },
  ]);
});

test('the outcome on the error stream: a v4 Status, or text only on failure for older protocols', () => {
  assert.deepEqual(JSON.parse(encodeOutcome({ exitCode: 0 }, true)!.toString()), { metadata: {}, status: 'Success' });
  const failed = JSON.parse(encodeOutcome({ exitCode: 3 }, true)!.toString()) as { reason: string; details: { causes: { reason: string; message: string }[] } };
  assert.equal(failed.reason, 'NonZeroExitCode');
  assert.deepEqual(failed.details.causes, [{ reason: 'ExitCode', message: '3' }]);
  assert.equal(encodeOutcome({ exitCode: 0 }, false), undefined);
  assert.match(encodeOutcome({ error: 'boom' }, false)!.toString(), /boom/);
});
