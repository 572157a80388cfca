import { strict as assert } from 'node:assert';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveCgroupDriver } from './cgroups.js';
import { checkCniConfig } from './cni-config.js';

const root = mkdtempSync(join(tmpdir(), 'berth-cni-'));
const bin = join(root, 'bin');
mkdirSync(bin);
for (const p of ['bridge', 'loopback']) {
  writeFileSync(join(bin, p), '#!/bin/sh\n');
  chmodSync(join(bin, p), 0o755);
}
const confDir = (name: string, files: Record<string, string>): string => {
  const d = join(root, name);
  mkdirSync(d);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
};
const conflist = (plugins: string[]): string => JSON.stringify({ cniVersion: '1.0.0', name: 'berth', plugins: plugins.map((type) => ({ type })) });

test('the first conflist by name is used and its plugins must exist', async () => {
  const ok = await checkCniConfig(confDir('ok', { '10-berth.conflist': conflist(['bridge', 'loopback']), '99-other.conflist': conflist(['missing']) }), [join(root, 'nope'), bin]);
  assert.deepEqual(ok, { ready: true, reason: '', message: '', configFile: join(root, 'ok', '10-berth.conflist'), networkName: 'berth' });
  const missing = await checkCniConfig(confDir('missing', { '10-x.conflist': conflist(['bridge', 'portmap']) }), [bin]);
  assert.equal(missing.ready, false);
  assert.equal(missing.reason, 'NetworkPluginNotReady');
  assert.match(missing.message, /CNI plugin portmap not found/);
});

test('an empty, absent or malformed config dir is not ready, with the reason', async () => {
  assert.match((await checkCniConfig(confDir('empty', { 'README': 'x' }), [bin])).message, /no network config found/);
  assert.match((await checkCniConfig(join(root, 'absent'), [bin])).message, /cannot read CNI config dir .*ENOENT/);
  assert.match((await checkCniConfig(confDir('bad', { '1.conflist': '{nope' }), [bin])).message, /not valid JSON/);
  assert.match((await checkCniConfig(confDir('noname', { '1.conflist': JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }) }), [bin])).message, /names no network/);
  assert.match((await checkCniConfig(confDir('escape', { '1.conflist': conflist(['../../bin/sh']) }), [bin])).message, /no valid type/);
});

test('the cgroup driver follows the host unless configured', () => {
  assert.equal(resolveCgroupDriver('auto', false), 'cgroupfs');
  assert.equal(resolveCgroupDriver('auto', true), 'systemd');
  assert.equal(resolveCgroupDriver('cgroupfs', true), 'cgroupfs');
  assert.throws(() => resolveCgroupDriver('systemd', false), /systemd is not running/);
});
