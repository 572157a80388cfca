import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCategory } from '@berth/errors';
import { mergeEnv, processArgs } from './containers.js';
import { apparmorProfile, boundingCapabilities, capabilities, defaultCapabilities, rootfsPropagation, validateSysctls } from './oci-spec.js';
import { podHostname } from './pods.js';
import { checkRunAs, resolveInRoot, resolveUser, runAsOf } from './user.js';

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
  const all = [...defaultCapabilities, 'CAP_SYS_ADMIN', 'CAP_NET_ADMIN'];
  assert.deepEqual(capabilities([], [], false, all), defaultCapabilities);
  const c = capabilities(['NET_ADMIN'], ['CAP_KILL'], false, all);
  assert.ok(c.includes('CAP_NET_ADMIN') && !c.includes('CAP_KILL'));
  assert.deepEqual(capabilities(['CHOWN'], ['ALL'], false, all), ['CAP_CHOWN']);
  // Privileged and ALL get the runtime's bounding set, nothing beyond it.
  assert.deepEqual(capabilities([], [], true, all), all);
  assert.deepEqual(capabilities(['ALL'], ['KILL'], false, all), all.filter((n) => n !== 'CAP_KILL'));
  assert.throws(() => capabilities(['bad cap'], [], false, all), (e: Error) => isCategory(e, 'invalid-argument'));
});

test("the bounding set read from /proc/<pid>/status names the capabilities it holds, CAP_SYS_RESOURCE's absence included", () => {
  const status = 'Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n';
  const caps = boundingCapabilities(status);
  assert.equal(caps.length, 40);
  assert.ok(!caps.includes('CAP_SYS_RESOURCE'));
  assert.deepEqual([caps[0], caps.at(-1)], ['CAP_CHOWN', 'CAP_CHECKPOINT_RESTORE']);
  // Bits beyond the names Berth knows are left out; a status without CapBnd is no status.
  assert.deepEqual(boundingCapabilities('CapBnd:\tffffffffffffffff\n').length, 41);
  assert.deepEqual(boundingCapabilities('CapBnd:\t0000000000200001\n'), ['CAP_CHOWN', 'CAP_SYS_ADMIN']);
  assert.throws(() => boundingCapabilities('Name:\tnode\n'), (e: Error) => isCategory(e, 'internal'));
});

test('run_as_group needs run_as_user or run_as_username, in a container and a sandbox alike', () => {
  const invalid = (e: Error) => isCategory(e, 'invalid-argument');
  assert.throws(() => runAsOf({ runAsGroup: { value: 1002n }, runAsUsername: '' }), invalid);
  assert.throws(() => checkRunAs({ runAsGroup: { value: 0n } }, 'pod security context'), invalid);
  assert.deepEqual(runAsOf({ runAsUser: { value: 1001n }, runAsGroup: { value: 1002n }, runAsUsername: '' }), { uid: 1001, gid: 1002 });
  assert.deepEqual(runAsOf({ runAsUsername: 'app', runAsGroup: { value: 7n } }), { username: 'app', gid: 7 });
  assert.deepEqual(runAsOf(undefined), {});
  checkRunAs({ runAsUser: { value: 0n } }, 'pod security context');
});

test("a pod's hostname: the given one if valid, else the node's, never the metadata name", () => {
  assert.equal(podHostname('', 'node-1'), 'node-1');
  assert.equal(podHostname('web-0', 'node-1'), 'web-0');
  for (const bad of ['under_score', '-lead', 'a'.repeat(65), `${'a'.repeat(32)}.${'b'.repeat(32)}`]) {
    assert.throws(() => podHostname(bad, 'node-1'), (e: Error) => isCategory(e, 'invalid-argument'), bad);
  }
});

test("the root's propagation follows the mounts, as containerd sets it: rshared for a bidirectional mount, rslave for host-to-container", () => {
  const bind = (propagation: string) => ({ destination: '/m', type: 'bind', source: '/tmp', options: ['rbind', propagation] });
  assert.deepEqual(rootfsPropagation([bind('rprivate')]), {});
  assert.deepEqual(rootfsPropagation([bind('rprivate'), bind('rslave')]), { rootfsPropagation: 'rslave' });
  assert.deepEqual(rootfsPropagation([bind('rslave'), bind('rshared')]), { rootfsPropagation: 'rshared' });
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
