import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { mergeEnv, processArgs } from './containers.js';
import { apparmorProfile, capabilities, defaultCapabilities, validateSysctls } from './oci-spec.js';
import { resolveInRoot, resolveUser } from './user.js';

test('command and args follow the kubelet: command replaces the entrypoint, args replace cmd', () => {
  assert.deepEqual(processArgs([], [], ['/entry'], ['cmd']), ['/entry', 'cmd']);
  assert.deepEqual(processArgs([], ['a'], ['/entry'], ['cmd']), ['/entry', 'a']);
  assert.deepEqual(processArgs(['/c'], [], ['/entry'], ['cmd']), ['/c']);
  assert.deepEqual(processArgs(['/c'], ['a'], ['/entry'], ['cmd']), ['/c', 'a']);
});

test('env: image first, the CRI overrides by name in place, bad names refused', () => {
  assert.deepEqual(mergeEnv(['A=1', 'B=2'], [{ key: 'B', value: 'x=y' }, { key: 'C', value: '' }]), ['A=1', 'B=x=y', 'C=']);
  assert.throws(() => mergeEnv([], [{ key: 'A=B', value: '1' }]), (e: Error) => isCategory(e, 'invalid-argument'));
});

test('capabilities: the default set, add and drop, ALL, privileged', () => {
  assert.deepEqual(capabilities([], [], false), defaultCapabilities);
  const c = capabilities(['NET_ADMIN'], ['CAP_KILL'], false);
  assert.ok(c.includes('CAP_NET_ADMIN') && !c.includes('CAP_KILL'));
  assert.deepEqual(capabilities(['CHOWN'], ['ALL'], false), ['CAP_CHOWN']);
  assert.ok(capabilities([], [], true).includes('CAP_SYS_ADMIN'));
  assert.throws(() => capabilities(['bad cap'], [], false), (e: Error) => isCategory(e, 'invalid-argument'));
});

test('sysctls: only namespaced ones, no smuggled settings, none of the host namespaces', () => {
  assert.deepEqual(validateSysctls({ 'net/ipv4/ip_unprivileged_port_start': '0', 'kernel.shmmax': '100' }, false, false), { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmax': '100' });
  for (const bad of [{ 'kernel.hostname': 'x' }, { 'vm.swappiness': '1' }, { 'net.ipv4.ip_forward': '1\nkernel.panic=1' }, { 'net.core.somaxconn': '1+2' }, { '../../x': '1' }]) {
    assert.throws(() => validateSysctls(bad, false, false), (e: Error) => isCategory(e, 'invalid-argument'), JSON.stringify(bad));
  }
  assert.throws(() => validateSysctls({ 'net.core.somaxconn': '1' }, true, false), /host's network/);
  assert.throws(() => validateSysctls({ 'kernel.msgmax': '1' }, false, true), /host's IPC/);
});

test('users and groups come from the image, through its symlinks but never out of it', async () => {
  const root = mkdtempSync('/tmp/berth-user-');
  try {
    mkdirSync(join(root, 'real-etc'));
    symlinkSync('/real-etc', join(root, 'etc'));
    writeFileSync(join(root, 'real-etc/passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n');
    writeFileSync(join(root, 'real-etc/group'), 'root:x:0:\napp:x:1001:\nwheel:x:10:app\n');
    assert.equal(await resolveInRoot(root, '/etc/passwd'), join(root, 'real-etc/passwd'));
    // An absolute link and ../ stay inside the root.
    symlinkSync('/../../../../etc/shadow', join(root, 'escape'));
    assert.equal(await resolveInRoot(root, '/escape'), join(root, 'etc/shadow').replace(`${root}/etc`, `${root}/real-etc`));
    assert.deepEqual(await resolveUser(root, { username: 'app', imageUser: '', extraGids: [5] }), { uid: 1000, gid: 1001, additionalGids: [5, 10], home: '/home/app' });
    assert.deepEqual(await resolveUser(root, { imageUser: 'app:wheel', extraGids: [] }), { uid: 1000, gid: 10, additionalGids: [10], home: '/home/app' });
    assert.deepEqual(await resolveUser(root, { uid: 4242, gid: 7, imageUser: 'app', extraGids: [] }), { uid: 4242, gid: 7, additionalGids: [], home: '/' });
    await assert.rejects(resolveUser(root, { username: 'nobody', imageUser: '', extraGids: [] }), (e: Error) => isCategory(e, 'not-found'));
    await assert.rejects(resolveUser(root, { uid: 2 ** 32, imageUser: '', extraGids: [] }), (e: Error) => isCategory(e, 'invalid-argument'));
    await assert.rejects(resolveUser(root, { imageUser: '', extraGids: [-1] }), (e: Error) => isCategory(e, 'invalid-argument'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('AppArmor: a Localhost profile by name where the host has AppArmor; refused where it has not', () => {
  assert.equal(apparmorProfile({ profileType: 2, localhostRef: 'k8s-nginx' }, '', true), 'k8s-nginx');
  assert.equal(apparmorProfile(undefined, 'localhost/k8s-nginx', true), 'k8s-nginx');
  assert.equal(apparmorProfile({ profileType: 0, localhostRef: '' }, '', false), undefined);
  assert.throws(() => apparmorProfile({ profileType: 2, localhostRef: 'p' }, '', false), /not enabled/);
  assert.throws(() => apparmorProfile({ profileType: 2, localhostRef: 'bad name' }, '', true), (e: Error) => isCategory(e, 'invalid-argument'));
});
