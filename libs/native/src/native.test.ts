// Runs against the real kernel. The device-node, trusted.* xattr and
// overlayfs tests need root (CAP_MKNOD, CAP_SYS_ADMIN) and are skipped
// otherwise. Scratch dirs live under /var/tmp, on the root filesystem:
// /tmp may be a tmpfs, which can lack trusted.* / user.* xattr support.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { closeSync, linkSync, lstatSync, mkdirSync, openSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createHash } from 'node:crypto';
import {
  LayerApplier,
  OVERLAY_OPAQUE_XATTR,
  describeExit,
  diskUsage,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  makeOverlayWhiteout,
  mknod,
  mount,
  mountPoints,
  pinNamespaces,
  runProcess,
  setOverlayOpaque,
  signalProcess,
  spawnProcess,
  unmount,
} from './index.js';

const isRoot = process.getuid?.() === 0;
const rootOnly = isRoot ? {} : { skip: 'needs root' };
let dir = '';

before(() => {
  dir = mkdtempSync(join('/var/tmp', 'berth-native-test-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const systemError = (code: string, syscall: string, path: string) => (err: unknown) => {
  assert.ok(err instanceof Error);
  const e = err as Error & { code?: string; errno?: number; syscall?: string; path?: string };
  assert.equal(e.code, code);
  assert.equal(e.errno, -(constants.errno as Record<string, number>)[code]!);
  assert.equal(e.syscall, syscall);
  assert.equal(e.path, path);
  assert.match(e.message, new RegExp(`^${code}: .+, ${syscall} '${path.replaceAll('/', '\\/')}'$`));
  return true;
};

test('file type constants match the platform', () => {
  assert.equal(S_IFCHR, 0o020000);
  assert.equal(S_IFBLK, 0o060000);
  assert.equal(S_IFIFO, 0o010000);
});

test('mknod makes a character device 0/0', rootOnly, () => {
  const p = join(dir, 'chr');
  mknod(p, S_IFCHR | 0o600, 0, 0);
  const st = lstatSync(p);
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, 0);
  assert.equal(st.mode & 0o7777, 0o600 & ~process.umask());
});

test('mknod encodes major and minor with makedev', rootOnly, () => {
  const p = join(dir, 'blk');
  mknod(p, S_IFBLK | 0o600, 0xabc, 0x12345);
  const st = lstatSync(p);
  assert.ok(st.isBlockDevice());
  // Linux's encoding: minor low 8 bits, major 12 bits, minor high 12 bits.
  assert.equal(st.rdev, 0x12300000 + (0xabc << 8) + 0x45);
});

test('mknod makes a fifo', () => {
  const p = join(dir, 'fifo');
  mknod(p, S_IFIFO | 0o644, 0, 0);
  assert.ok(lstatSync(p).isFIFO());
});

test('a second mknod on the same path throws EEXIST', () => {
  const p = join(dir, 'twice');
  mknod(p, S_IFIFO | 0o644, 0, 0);
  assert.throws(() => mknod(p, S_IFIFO | 0o644, 0, 0), systemError('EEXIST', 'mknod', p));
});

test('makeOverlayWhiteout makes a 0/0 char device with no permissions', rootOnly, () => {
  const p = join(dir, 'whiteout');
  makeOverlayWhiteout(p);
  const st = lstatSync(p);
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, 0);
  assert.equal(st.mode & 0o7777, 0);
});

test('set, get, list and remove a user. xattr on a directory', () => {
  const d = join(dir, 'xattr-user');
  mkdirSync(d);
  lsetxattr(d, 'user.berth.test', Buffer.from('hello'));
  assert.deepEqual(lgetxattr(d, 'user.berth.test'), Buffer.from('hello'));
  assert.ok(llistxattr(d).includes('user.berth.test'));
  lsetxattr(d, 'user.berth.empty', Buffer.alloc(0));
  assert.deepEqual(lgetxattr(d, 'user.berth.empty'), Buffer.alloc(0));
  lsetxattr(d, 'user.berth.bytes', new Uint8Array([0, 255, 0]));
  assert.deepEqual(lgetxattr(d, 'user.berth.bytes'), Buffer.from([0, 255, 0]));
  lremovexattr(d, 'user.berth.test');
  assert.equal(lgetxattr(d, 'user.berth.test'), undefined);
  assert.ok(!llistxattr(d).includes('user.berth.test'));
  assert.throws(() => lremovexattr(d, 'user.berth.test'), systemError('ENODATA', 'lremovexattr', d));
});

test('setOverlayOpaque sets trusted.overlay.opaque, which can be read, listed and removed', rootOnly, () => {
  const d = join(dir, 'xattr-trusted');
  mkdirSync(d);
  setOverlayOpaque(d);
  assert.equal(OVERLAY_OPAQUE_XATTR, 'trusted.overlay.opaque');
  assert.deepEqual(lgetxattr(d, 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.ok(llistxattr(d).includes('trusted.overlay.opaque'));
  lremovexattr(d, 'trusted.overlay.opaque');
  assert.equal(lgetxattr(d, 'trusted.overlay.opaque'), undefined);
  assert.ok(!llistxattr(d).includes('trusted.overlay.opaque'));
});

test('lgetxattr of a missing attribute is undefined; of a missing path throws ENOENT', () => {
  const f = join(dir, 'plain');
  writeFileSync(f, '');
  assert.equal(lgetxattr(f, 'user.berth.none'), undefined);
  assert.deepEqual(
    llistxattr(f).filter((n) => n.startsWith('user.')),
    [],
  );
  const missing = join(dir, 'missing');
  assert.throws(() => lgetxattr(missing, 'user.x'), systemError('ENOENT', 'lgetxattr', missing));
  assert.throws(() => llistxattr(missing), systemError('ENOENT', 'llistxattr', missing));
  assert.throws(() => lsetxattr(missing, 'user.x', Buffer.from('1')), systemError('ENOENT', 'lsetxattr', missing));
});

test('the l* calls act on a symlink itself, never its target', rootOnly, () => {
  const target = join(dir, 'link-target');
  const link = join(dir, 'link');
  writeFileSync(target, '');
  symlinkSync(target, link);
  lsetxattr(link, 'trusted.berth.test', Buffer.from('link'));
  assert.deepEqual(lgetxattr(link, 'trusted.berth.test'), Buffer.from('link'));
  assert.equal(lgetxattr(target, 'trusted.berth.test'), undefined);
  assert.ok(llistxattr(link).includes('trusted.berth.test'));
  assert.ok(!llistxattr(target).includes('trusted.berth.test'));
  // Linux refuses user.* xattrs on symlinks; setxattr (following) would have succeeded on the target.
  assert.throws(() => lsetxattr(link, 'user.berth.test', Buffer.from('x')), systemError('EPERM', 'lsetxattr', link));
  assert.equal(lgetxattr(target, 'user.berth.test'), undefined);
  lremovexattr(link, 'trusted.berth.test');
  assert.equal(lgetxattr(link, 'trusted.berth.test'), undefined);
});

test('a NUL byte in a path or name throws TypeError instead of truncating', () => {
  const d = join(dir, 'nul');
  mkdirSync(d);
  const nul = `${d}\0ignored`;
  const invalidValue = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
  assert.throws(() => mknod(nul, S_IFIFO | 0o644, 0, 0), invalidValue);
  assert.throws(() => lsetxattr(nul, 'user.x', Buffer.from('1')), invalidValue);
  assert.throws(() => lsetxattr(d, 'user.x\0y', Buffer.from('1')), invalidValue);
  assert.throws(() => lgetxattr(nul, 'user.x'), invalidValue);
  assert.throws(() => llistxattr(nul), invalidValue);
  assert.throws(() => lremovexattr(nul, 'user.x'), invalidValue);
  assert.throws(() => makeOverlayWhiteout(`${d}/wh\0`), invalidValue);
  // Nothing was created at the truncated path.
  assert.ok(statSync(d).isDirectory());
  assert.deepEqual(readdirSync(d), []);
  assert.equal(lgetxattr(d, 'user.x'), undefined);
});

test('bad argument types throw TypeError, out-of-range numbers RangeError', () => {
  const invalidType = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
  const call = (fn: (...args: never[]) => unknown, ...args: unknown[]) => () => (fn as (...a: unknown[]) => unknown)(...args);
  const p = join(dir, 'types');
  assert.throws(call(mknod, 42, S_IFIFO, 0, 0), invalidType);
  assert.throws(call(mknod, p, '4096', 0, 0), invalidType);
  assert.throws(call(mknod, p), invalidType);
  assert.throws(call(lsetxattr, p, 'user.x', 'not a buffer'), invalidType);
  assert.throws(call(lsetxattr, p, Symbol('x'), Buffer.alloc(0)), invalidType);
  assert.throws(call(lgetxattr, Buffer.from(p), 'user.x'), invalidType);
  assert.throws(call(llistxattr), invalidType);
  assert.throws(call(lremovexattr, p, null), invalidType);
  const outOfRange = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };
  assert.throws(() => mknod(p, S_IFIFO | 0o644, 0x1000, 0), outOfRange);
  assert.throws(() => mknod(p, S_IFIFO | 0o644, 0, 0x100000), outOfRange);
  assert.throws(() => mknod(p, -1, 0, 0), outOfRange);
  assert.throws(() => mknod(p, 1.5, 0, 0), outOfRange);
  assert.throws(() => mknod(p, Number.NaN, 0, 0), outOfRange);
  assert.throws(() => lstatSync(p), { code: 'ENOENT' });
});

test('overlayfs honours a whiteout and an opaque directory made here', rootOnly, () => {
  const base = join(dir, 'overlay');
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => join(base, n)) as [string, string, string, string];
  for (const d of [lower, upper, work, merged]) mkdirSync(d, { recursive: true });
  writeFileSync(join(lower, 'gone'), 'lower');
  writeFileSync(join(lower, 'kept'), 'lower');
  mkdirSync(join(lower, 'opaque'));
  writeFileSync(join(lower, 'opaque', 'lower-only'), 'lower');
  mkdirSync(join(lower, 'merged-dir'));
  writeFileSync(join(lower, 'merged-dir', 'lower-only'), 'lower');

  makeOverlayWhiteout(join(upper, 'gone'));
  mkdirSync(join(upper, 'opaque'));
  setOverlayOpaque(join(upper, 'opaque'));
  writeFileSync(join(upper, 'opaque', 'upper-only'), 'upper');
  mkdirSync(join(upper, 'merged-dir'));
  writeFileSync(join(upper, 'merged-dir', 'upper-only'), 'upper');

  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  try {
    assert.deepEqual(readdirSync(merged).sort(), ['kept', 'merged-dir', 'opaque']);
    assert.throws(() => lstatSync(join(merged, 'gone')), { code: 'ENOENT' });
    assert.deepEqual(readdirSync(join(merged, 'opaque')), ['upper-only']);
    // Control: the same layout without the opaque xattr merges both layers.
    assert.deepEqual(readdirSync(join(merged, 'merged-dir')).sort(), ['lower-only', 'upper-only']);
  } finally {
    execFileSync('umount', [merged]);
  }
});

/** "<type> <options>" of what /proc/mounts shows at `target`, '' when nothing is. */
const mounted = (target: string) =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1] === target)
    .map((f) => `${f[2]} ${f[3]}`)
    .join('\n');

test('mount and unmount: a tmpfs with flags and data, a read-only bind, errors named as Node names them', rootOnly, async () => {
  const tmp = join(dir, 'tmpfs');
  mkdirSync(tmp);
  await mount('shm', tmp, 'tmpfs', ['nosuid', 'nodev', 'noexec', 'mode=1777', 'size=1m']);
  const seen = mounted(tmp);
  assert.match(seen, /^tmpfs /);
  for (const o of ['nosuid', 'nodev', 'noexec', 'size=1024k']) assert.ok(seen.split(/[ ,]/).includes(o), `${o} in ${seen}`);
  assert.equal(statSync(tmp).mode & 0o7777, 0o1777);

  const src = join(dir, 'bind-source');
  const ro = join(dir, 'bind-ro');
  mkdirSync(src);
  mkdirSync(ro);
  writeFileSync(join(src, 'f'), 'x');
  await mount(src, ro, 'bind', ['rbind', 'ro']);
  assert.ok(mounted(ro).split(/[ ,]/).includes('ro'));
  assert.throws(() => writeFileSync(join(ro, 'g'), 'y'), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
  writeFileSync(join(src, 'g'), 'y'); // the source stays writable

  assert.equal(await unmount(ro), true);
  assert.equal(await unmount(tmp), true);
  assert.equal(await unmount(tmp), false, 'nothing mounted there any more');
  assert.equal(await unmount(join(dir, 'no-such-dir')), false);
  assert.deepEqual(readdirSync(ro), []);

  const missing = join(dir, 'missing');
  await assert.rejects(mount('shm', missing, 'tmpfs', []), systemError('ENOENT', 'mount', missing));
  await assert.rejects(mount('x', tmp, 'no-such-filesystem', []), systemError('ENODEV', 'mount', tmp));
  await assert.rejects(mount('x', `${tmp}\0/etc`, 'tmpfs', []), (e: Error & { code?: string }) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE');
});

test('a busy mount is detached rather than left behind', rootOnly, async () => {
  const tmp = join(dir, 'busy');
  mkdirSync(tmp);
  await mount('busy', tmp, 'tmpfs', ['size=1m']);
  writeFileSync(join(tmp, 'held'), 'x');
  const holder = await import('node:fs/promises').then((fs) => fs.open(join(tmp, 'held'), 'r'));
  try {
    assert.equal(await unmount(tmp), true);
    assert.equal(mounted(tmp), '', 'gone from the mount table');
  } finally {
    await holder.close();
  }
});

test('mallocTrim hands freed malloc memory in the middle of the heap back to the kernel', () => {
  // In a child process, so nothing else in this one moves its memory meanwhile: 8000
  // malloc'd 8 KB buffers, all but every 16th freed. The freed ones sit between live ones,
  // where free() alone never returns them.
  const script = `
    import { readFileSync } from 'node:fs';
    const { mallocTrim } = await import(${JSON.stringify(new URL('./index.js', import.meta.url).href)});
    const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
    let held = [];
    for (let i = 0; i < 8000; i++) held.push(Buffer.allocUnsafeSlow(8000).fill(1));
    held = held.filter((_, i) => i % 16 === 0);
    for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
    const before = anon();
    const released = mallocTrim();
    console.log(JSON.stringify({ before, after: anon(), released, held: held.length }));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { before: number; after: number; released: boolean };
  assert.equal(out.released, true);
  assert.ok(out.before - out.after > 30, `resident anonymous memory ${out.before.toFixed(0)} MiB before, ${out.after.toFixed(0)} MiB after`);
});

test('pinNamespaces: new net, UTS and IPC namespaces pinned to files, the hostname set in the UTS one, this process left where it was', rootOnly, async () => {
  const own = (kind: string) => statSync(`/proc/self/ns/${kind}`).ino;
  const before = { net: own('net'), uts: own('uts'), ipc: own('ipc') };
  const hostname = execFileSync('hostname', { encoding: 'utf8' }).trim();
  const pins = { net: join(dir, 'pin-net'), uts: join(dir, 'pin-uts'), ipc: join(dir, 'pin-ipc') };
  for (const p of Object.values(pins)) writeFileSync(p, '');
  await pinNamespaces({ ...pins, hostname: 'pinned-pod' });
  try {
    for (const kind of ['net', 'uts', 'ipc'] as const) {
      assert.notEqual(statSync(pins[kind]).ino, before[kind], `a new ${kind} namespace`);
      assert.equal(own(kind), before[kind], `this process is still in its own ${kind} namespace`);
    }
    assert.equal(execFileSync('nsenter', [`--uts=${pins.uts}`, 'hostname'], { encoding: 'utf8' }).trim(), 'pinned-pod');
    assert.equal(execFileSync('hostname', { encoding: 'utf8' }).trim(), hostname, "the node's hostname is untouched");
    // A fresh network namespace has only its loopback, brought up.
    const links = execFileSync('nsenter', [`--net=${pins.net}`, 'ip', '-o', 'link'], { encoding: 'utf8' }).trim().split('\n');
    assert.equal(links.length, 1, links.join('\n'));
    assert.match(links[0]!, /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
    // Every thread of this process stays out of them (libuv's pool threads included).
    for (const task of readdirSync('/proc/self/task')) assert.equal(statSync(`/proc/self/task/${task}/ns/net`).ino, before.net, `thread ${task}`);
  } finally {
    for (const p of Object.values(pins)) await unmount(p);
  }
  // Only a network namespace: the others are not made.
  const net = join(dir, 'pin-net-only');
  writeFileSync(net, '');
  await pinNamespaces({ net });
  assert.notEqual(statSync(net).ino, before.net);
  await unmount(net);

  // A target that is not there: the error names the mount and its path, and no pin is left.
  const missing = join(dir, 'pin-missing');
  const first = join(dir, 'pin-first');
  writeFileSync(first, '');
  await assert.rejects(pinNamespaces({ net: first, uts: missing }), systemError('ENOENT', 'mount', missing));
  assert.equal(await unmount(first), false, 'the pin made before the failure was undone');
  await assert.rejects(pinNamespaces({}), TypeError);
  await assert.rejects(pinNamespaces({ net: first, hostname: 'x' }), TypeError);
});

test('runProcess: output, input, exit codes, signals, a timeout, and a program that does not exist', async () => {
  const r = await runProcess('/bin/sh', ['-c', 'echo out; echo err >&2; cat; exit 3'], { input: 'fed\n' });
  assert.deepEqual([r.code, r.signal, r.stdout.toString(), r.stderr.toString(), r.timedOut], [3, null, 'out\nfed\n', 'err\n', false]);
  const named = await runProcess('sh', ['-c', 'echo found in PATH']);
  assert.equal(named.stdout.toString(), 'found in PATH\n');
  const env = await runProcess('/bin/sh', ['-c', 'echo "$ONLY"; env | wc -l'], { env: { ONLY: 'this' } });
  assert.match(env.stdout.toString(), /^this\n\s*[1-4]\n$/, 'only the given environment (sh adds PWD, SHLVL and _)');
  const capped = await runProcess('/bin/sh', ['-c', 'head -c 100000 /dev/zero'], { maxOutput: 1000 });
  assert.deepEqual([capped.stdout.length, capped.truncated, capped.code], [1000, true, 0]);
  assert.equal(describeExit(r), 'exit status 3');
  const slow = await runProcess('/bin/sleep', ['30'], { timeoutMs: 100 });
  assert.deepEqual([slow.timedOut, slow.signal, slow.code], [true, 'SIGKILL', null]);
  assert.equal(describeExit(slow), 'ended by SIGKILL');
  // A grandchild that keeps the output pipe open does not hold the call past its timeout.
  const started = Date.now();
  const held = await runProcess('/bin/sh', ['-c', 'echo before; sleep 5 & wait'], { timeoutMs: 200 });
  assert.deepEqual([held.timedOut, held.stdout.toString()], [true, 'before\n']);
  assert.ok(Date.now() - started < 2500, `returned after ${Date.now() - started} ms`);
  assert.throws(() => spawnProcess('/nonexistent/berth-program', []), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'spawn');
});

test('spawnProcess: the child gets default signals, only the fds it was given, its own session when asked, and can be killed', async () => {
  // Node ignores SIGPIPE; a child must not inherit that (bit 13 of SigIgn), nor any blocked signal.
  const status = (await runProcess('/bin/cat', ['/proc/self/status'])).stdout.toString();
  assert.equal(BigInt(`0x${/^SigBlk:\s*(\w+)/m.exec(status)![1]}`), 0n);
  assert.equal(BigInt(`0x${/^SigIgn:\s*(\w+)/m.exec(status)![1]}`) & (1n << 12n), 0n, 'SIGPIPE at its default');
  // The child has its three stdio fds and what it was given; nothing else of this process.
  const fds = (await runProcess('/bin/ls', ['/proc/self/fd'])).stdout.toString().trim().split('\n').map(Number);
  assert.deepEqual(fds, [0, 1, 2, 3], "0-2 and ls's own directory");
  const dir = mkdtempSync('/tmp/berth-native-spawn-');
  const file = openSync(join(dir, 'f'), 'w');
  try {
    const given = spawnProcess('/bin/sh', ['-c', 'echo via fd 3 >&3'], { stdio: ['ignore', 'ignore', 'ignore', file] });
    assert.deepEqual(await given.exited, { code: 0, signal: null });
    assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'via fd 3\n');
  } finally {
    closeSync(file);
    rmSync(dir, { recursive: true, force: true });
  }
  const sessionOf = async (newSession: boolean) => {
    const child = spawnProcess('/bin/sh', ['-c', 'cut -d" " -f6 /proc/$$/stat'], { stdio: ['ignore', 'pipe', 'ignore'], newSession });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await child.closed; // all of its output read
    return { pid: child.pid, sid: Number(out.trim()) };
  };
  const ours = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[3]);
  assert.equal((await sessionOf(false)).sid, ours, "this process's session");
  const leader = await sessionOf(true);
  assert.equal(leader.sid, leader.pid, 'a new session, led by the child');
  const sleeper = spawnProcess('/bin/sleep', ['30']);
  assert.ok(sleeper.kill('SIGTERM'));
  assert.deepEqual(await sleeper.exited, { code: null, signal: 'SIGTERM' });
  assert.equal(sleeper.kill(), false, 'a reaped child is not signalled (its pid may be reused)');
});

test('signalProcess signals only the process that started at the given time', async () => {
  const child = spawnProcess('/bin/sleep', ['30']);
  const start = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
  assert.equal(signalProcess(child.pid, String(BigInt(start) + 1n), 'SIGTERM'), false, 'another start time: another process');
  assert.equal(signalProcess(child.pid, start, 'SIGTERM'), true);
  assert.deepEqual(await child.exited, { code: null, signal: 'SIGTERM' });
  assert.equal(signalProcess(child.pid, start, 'SIGTERM'), false, 'gone');
  assert.throws(() => signalProcess(child.pid, start, 'SIGNOPE' as NodeJS.Signals), TypeError);
});

test('diskUsage counts blocks and inodes as du does: a hard link once, a symlink as itself, nothing outside', async () => {
  const root = join(dir, 'usage');
  mkdirSync(join(root, 'a/b'), { recursive: true });
  writeFileSync(join(root, 'a/one'), Buffer.alloc(100_000, 1));
  writeFileSync(join(root, 'a/b/two'), Buffer.alloc(9_000, 2));
  linkSync(join(root, 'a/one'), join(root, 'a/b/one-again'));
  symlinkSync('/usr', join(root, 'to-usr'));
  mkdirSync(join(dir, 'usage-outside'));
  writeFileSync(join(dir, 'usage-outside/big'), Buffer.alloc(500_000, 3));
  linkSync(join(dir, 'usage-outside/big'), join(root, 'a/shared-with-outside'));
  const du = (flag: string) => Number(execFileSync('du', ['-s', flag, root]).toString().split('\t')[0]);
  const usage = await diskUsage(root);
  assert.equal(usage.bytes, du('--block-size=512') * 512);
  assert.equal(usage.inodes, du('--inodes'));
  // root, a, a/b, one (and its second name), two, the symlink, the file shared with outside
  assert.equal(usage.inodes, 7);
  assert.ok(usage.bytes >= 600_000, `the shared file counts here too: ${usage.bytes}`);
  assert.deepEqual(await diskUsage(join(dir, 'no-such-tree')), { bytes: 0, inodes: 0 });
  await assert.rejects(diskUsage(join(root, 'a\0b')), TypeError);
});

test('mountPoints reads field 5 of each mountinfo line, octal escapes undone; the live mountinfo holds /', () => {
  const info = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '98 22 0:48 / /var/tmp/a\\040b\\011c\\134d rw - tmpfs tmpfs rw',
    '',
  ].join('\n');
  assert.deepEqual(mountPoints(info), ['/', '/var/tmp/a b\tc\\d']);
  assert.ok(mountPoints(readFileSync('/proc/self/mountinfo', 'utf8')).includes('/'));
});

test('LayerApplier: a missing root is ENOENT, a plain tar applies, and one batch waits at a time', async () => {
  assert.throws(() => new LayerApplier('/nonexistent/berth-root', 'none', 1e9), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  const root = mkdtempSync('/var/tmp/berth-applier-');
  try {
    // One ustar entry "f" holding "hi", then the two zero blocks that end a tar.
    const header = Buffer.alloc(512);
    header.write('f', 0);
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write('00000000002\0', 124);
    header.write('00000000000\0', 136);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    header.fill(' ', 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const body = Buffer.alloc(512);
    body.write('hi');
    const tar = Buffer.concat([header, body, Buffer.alloc(1024)]);
    const applier = new LayerApplier(root, 'none', 1e9);
    const first = applier.push([tar.subarray(0, 700)]);
    await assert.rejects(applier.push([tar.subarray(700)]), /has not been taken yet/);
    await first;
    // A batch with no bytes in it (an empty chunk from a source) is nothing to wait for.
    await applier.push([Buffer.alloc(0)]);
    await applier.push([tar.subarray(700)]);
    const { diffId, uncompressedBytes } = await applier.end();
    assert.equal(uncompressedBytes, tar.length);
    assert.equal(diffId, `sha256:${createHash('sha256').update(tar).digest('hex')}`);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'hi');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
