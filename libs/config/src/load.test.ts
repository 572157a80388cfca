import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { loadConfig } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test('defaults apply when the default file is absent', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.socket, '/run/berth/berth.sock');
  assert.equal(config.stateDir, '/var/lib/berth');
  assert.equal(config.database.url, 'file:/var/lib/berth/berth.db');
  assert.deepEqual(config.cni.binDirs, ['/usr/lib/cni', '/opt/cni/bin']);
});

test('file values, then environment overrides, nested with a double underscore', () => {
  const path = file('a.toml', 'stateDir = "/srv/berth"\n[nats]\nport = 4300\n');
  const config = loadConfig({ path, env: { BERTH_NATS__PORT: '4301', BERTH_CGROUP_DRIVER: 'cgroupfs', BERTH_CNI__BIN_DIRS: '["/x"]' } });
  assert.equal(config.stateDir, '/srv/berth');
  assert.equal(config.nats.port, 4301);
  assert.equal(config.cgroupDriver, 'cgroupfs');
  assert.deepEqual(config.cni.binDirs, ['/x']);
  assert.equal(config.database.url, 'file:/srv/berth/berth.db');
});

test('an error names the bad key and where it came from', () => {
  const path = file('b.toml', '[nats]\nprot = 4222\n');
  assert.throws(() => loadConfig({ path, env: {} }), (err: Error) => {
    assert.ok(isCategory(err, 'invalid-argument'));
    assert.match(err.message, /nats\.prot: unknown key \(in .*b\.toml\)/);
    return true;
  });
  assert.throws(() => loadConfig({ path: file('c.toml', ''), env: { BERTH_STATE_DIR: 'relative' } }), /stateDir: must be an absolute path \(from BERTH_STATE_DIR\)/);
  assert.throws(() => loadConfig({ path: file('d.toml', ''), env: { BERTH_CGROUP_DRIVER: 'nope' } }), /cgroupDriver: .*\(from BERTH_CGROUP_DRIVER\)/);
});

test('an explicit file that is missing or not TOML is an error', () => {
  assert.throws(() => loadConfig({ path: join(dir, 'missing.toml'), env: {} }), /missing\.toml/);
  assert.throws(() => loadConfig({ path: file('e.toml', 'this is = = not toml'), env: {} }), /e\.toml/);
});
