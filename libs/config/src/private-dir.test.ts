import { strict as assert } from 'node:assert';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { checkPrivateDir, ensurePrivateDir } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-private-'));
const refused = (path: string, words: RegExp) => (err: unknown) => isCategory(err, 'failed-precondition') && err instanceof Error && err.message.includes(path) && words.test(err.message);

test('a directory others can write is refused, naming the path and the fix', () => {
  const p = join(dir, 'world-writable');
  mkdirSync(p);
  chmodSync(p, 0o777);
  assert.throws(() => checkPrivateDir(p), refused(p, /writable by every user \(mode 0777\).*chmod 0700/));
  chmodSync(p, 0o1777);
  assert.throws(() => ensurePrivateDir(p), refused(p, /mode 1777/));
});

test('a directory owned by another non-root user is refused', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, () => {
  const p = join(dir, 'nobodys');
  mkdirSync(p, { mode: 0o700 });
  chownSync(p, 65534, 65534);
  assert.throws(() => checkPrivateDir(p), refused(p, /owned by another user \(uid 65534\).*chown/));
});

test('a missing directory passes and is created 0700; a wider one of ours is narrowed', () => {
  const p = join(dir, 'fresh', 'state');
  checkPrivateDir(p);
  ensurePrivateDir(p);
  assert.equal(statSync(p).mode & 0o7777, 0o700);
  const q = join(dir, 'old');
  mkdirSync(q);
  chmodSync(q, 0o755);
  ensurePrivateDir(q);
  assert.equal(statSync(q).mode & 0o7777, 0o700);
  const r = join(dir, 'socket-dir');
  mkdirSync(r);
  chmodSync(r, 0o751);
  ensurePrivateDir(r, 0o710);
  assert.equal(statSync(r).mode & 0o7777, 0o710);
});

test('a file in place of the directory is refused', () => {
  const p = join(dir, 'a-file');
  writeFileSync(p, '');
  assert.throws(() => checkPrivateDir(p), refused(p, /not a directory/));
});
