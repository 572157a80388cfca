import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { criV1, filterContainers, filterPods, isIdPrefix, matchId, resolveId } from './index.js';

const a = { id: 'ab12' + '0'.repeat(60) };
const b = { id: 'ab34' + '0'.repeat(60) };
const c = { id: 'cd56' + '0'.repeat(60) };
const items = [a, b, c];
const byId = (i: { id: string }) => i.id;

test('an id resolves by its full id or a unique prefix, as containerd resolves ids (truncindex)', () => {
  assert.equal(resolveId(items, a.id, 'pod sandbox', byId), a, 'the full id');
  assert.equal(resolveId(items, 'ab1', 'pod sandbox', byId), a, 'a unique prefix');
  assert.equal(resolveId(items, 'c', 'pod sandbox', byId), c, 'one character is a prefix too');
  assert.equal(resolveId(items, 'ef', 'pod sandbox', byId), undefined, 'an unknown prefix names nothing');
  assert.equal(resolveId(items, 'f'.repeat(64), 'pod sandbox', byId), undefined, 'an unknown full id names nothing');
  assert.equal(resolveId([], 'ab', 'pod sandbox', byId), undefined);
});

test('an ambiguous prefix is refused (FAILED_PRECONDITION: give more of the id), an empty id is invalid', () => {
  assert.throws(() => resolveId(items, 'ab', 'container', byId), (e: Error) => isCategory(e, 'failed-precondition') && /container id prefix "ab" is ambiguous: it matches 2/.test(e.message));
  assert.throws(() => resolveId(items, '', 'container', byId), (e: Error) => isCategory(e, 'invalid-argument'));
  assert.deepEqual(matchId(items, 'ab', byId), [a, b], 'matchId lists every match');
  assert.deepEqual(matchId(items, '', byId), []);
});

test('a full id wins over ids it is a prefix of', () => {
  const short = { id: 'abc' };
  const long = { id: 'abcd' };
  assert.equal(resolveId([long, short], 'abc', 'image', byId), short);
  assert.deepEqual(matchId([long, short], 'abc', byId), [short]);
});

test('the id an item is matched by is the caller\'s: an image digest by its hex', () => {
  const images = [{ id: `sha256:${'7'.repeat(64)}` }, { id: `sha256:${'8'.repeat(64)}` }];
  const hex = (i: { id: string }) => i.id.slice(i.id.indexOf(':') + 1);
  assert.equal(resolveId(images, '777', 'image', hex), images[0]);
  assert.equal(resolveId(images, 'sha256:888', 'image', byId), images[1]);
});

test('only lowercase hex shorter than a full id has the form of a prefix', () => {
  assert.ok(isIdPrefix('53f94b3d1cb9'));
  assert.ok(isIdPrefix('5'));
  assert.ok(!isIdPrefix('f'.repeat(64)), 'a full id');
  assert.ok(!isIdPrefix('3b241101-e2bb-4255-8caf-4136c2a0f8b3'), "a UUID (what critest's idempotence checks send)");
  assert.ok(!isIdPrefix('53F94B'), 'Berth ids are lowercase');
  assert.ok(!isIdPrefix(''));
});

test('list filters resolve the id first, as containerd does: a unique prefix selects its item, an ambiguous or unknown one nothing', () => {
  const none = criV1.ContainerFilter.fromPartial({});
  const containers = [criV1.Container.fromPartial({ id: a.id, podSandboxId: c.id }), criV1.Container.fromPartial({ id: b.id, podSandboxId: c.id }), criV1.Container.fromPartial({ id: c.id, podSandboxId: a.id })];
  assert.deepEqual(filterContainers(containers, { ...none, id: 'ab3' }).map((x) => x.id), [b.id]);
  assert.deepEqual(filterContainers(containers, { ...none, id: 'ab' }), [], 'ambiguous');
  assert.deepEqual(filterContainers(containers, { ...none, id: 'ef' }), [], 'unknown');
  assert.deepEqual(filterContainers(containers, { ...none, podSandboxId: 'cd' }).map((x) => x.id), [a.id, b.id], 'a pod prefix names one pod, whatever its number of containers');
  const pods = items.map((p) => criV1.PodSandbox.fromPartial({ id: p.id }));
  const noPod = criV1.PodSandboxFilter.fromPartial({});
  assert.deepEqual(filterPods(pods, { ...noPod, id: 'ab1' }).map((p) => p.id), [a.id]);
  assert.deepEqual(filterPods(pods, { ...noPod, id: 'ab' }), []);
  assert.deepEqual(filterPods(pods, { ...noPod, id: c.id }).map((p) => p.id), [c.id]);
});
