// The state and run dirs keep other users out: as the unprivileged user
// nobody, no file under them can be read and the CRI socket cannot be dialled.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { imageSpec } from '@berth/client';
import { buildImage, pushImage } from '@berth/oci';
import { criV1 } from '@berth/proto';
import { busyboxRootfs, removeAllPods, startRegistry, startStack, waitFor, type RegistryHandle, type StackHandle } from '@berth/testing';

const run = promisify(execFile);
const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];

let stack: StackHandle;
let registry: RegistryHandle;
const logRoot = mkdtempSync('/var/tmp/berth-e2e-logs-');
let logPath = '';

// A pulled image and a running pod whose container runs as uid 1000: content,
// snapshots, pod and container dirs, records and runtime state all exist while
// the dirs are walked, and a non-root container still reads its rootfs.
before(async () => {
  registry = await startRegistry();
  const image = await buildImage({
    layers: [[...busyboxRootfs(), { type: 'dir', path: '/etc' }, { type: 'file', path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' }]],
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
  });
  await pushImage(registry.url, 'test/busybox', 'private', image);
  const imageName = `${registry.host}/test/busybox:private`;
  stack = await startStack();
  await stack.cri.image.pullImage({ image: imageSpec(imageName), auth: undefined, sandboxConfig: undefined });
  const config = criV1.PodSandboxConfig.fromPartial({
    metadata: { name: 'private', namespace: 'e2e', uid: 'uid-private', attempt: 0 },
    hostname: 'private',
    logDirectory: join(logRoot, 'private'),
    linux: { securityContext: { namespaceOptions: { network: 0, pid: 0, ipc: 0 } } },
  });
  const { podSandboxId } = await stack.cri.runtime.runPodSandbox({ config, runtimeHandler: '' });
  const { containerId } = await stack.cri.runtime.createContainer({
    podSandboxId,
    config: criV1.ContainerConfig.fromPartial({
      metadata: { name: 'app', attempt: 0 },
      image: { image: imageName },
      command: ['/bin/sh', '-c', 'echo "uid $(id -u) $(head -c 4 /etc/passwd)"; exec sleep 600'],
      logPath: 'app/0.log',
      linux: { securityContext: { runAsUser: { value: 1000n } } },
    }),
    sandboxConfig: config,
  });
  await stack.cri.runtime.startContainer({ containerId });
  logPath = join(logRoot, 'private', 'app/0.log');
});
after(async () => {
  if (stack !== undefined) await removeAllPods(stack);
  await stack?.stop();
  await registry?.stop();
  rmSync(logRoot, { recursive: true, force: true });
});

test('a container running as a non-root user still reads its rootfs', async () => {
  const log = await waitFor('the log', () => {
    const text = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    return text.includes('uid ') ? text : undefined;
  });
  assert.match(log, /uid 1000 root/);
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

test('the stack lays out its dirs as a production node does', () => {
  assert.equal(statSync(stack.dir).mode & 0o777, 0o755, 'the stack dir stands for /var/lib and /run');
  const state = join(stack.dir, 'state');
  const runDir = join(stack.dir, 'run');
  assert.equal(statSync(state).mode & 0o777, 0o700);
  assert.equal(statSync(runDir).mode & 0o777, 0o710, 'the run dir holds the CRI socket: its group may reach it');
  assert.equal(statSync(stack.socket).mode & 0o777, 0o660);
  for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) assert.equal(statSync(join(state, f)).mode & 0o777, 0o600, f);
});

test('no file under the state and run dirs is readable by nobody', async () => {
  for (const dir of [join(stack.dir, 'state'), join(stack.dir, 'run')]) {
    const found = await run('setpriv', [...asNobody, 'find', dir, '-readable', '-type', 'f'], { encoding: 'utf8' }).catch((err: { stdout: string }) => err);
    assert.equal(found.stdout.trim(), '', `readable by nobody under ${dir}`);
    const files = filesUnder(dir).filter((f) => statSync(f).isFile());
    assert.ok(files.length > 0, `the stack has files under ${dir}`);
    const script = 'for f; do cat "$f" >/dev/null 2>&1 && echo "$f"; done; true';
    const { stdout } = await run('setpriv', [...asNobody, 'sh', '-c', script, 'sh', ...files], { encoding: 'utf8' });
    assert.equal(stdout.trim(), '', `files nobody could cat under ${dir}`);
  }
});

test('nobody cannot connect to the CRI socket (EACCES)', async () => {
  const probe = `require('node:net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); });`;
  const { stdout } = await run('setpriv', [...asNobody, process.execPath, '-e', probe, stack.socket], { encoding: 'utf8' });
  assert.equal(stdout.trim(), 'EACCES');
  // root (the socket's owner) still can.
  await stack.cri.runtime.version({ version: '' });
});
