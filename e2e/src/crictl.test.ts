// Berth driven by the real crictl (cri-tools v1.26.1: a static Go binary whose
// gRPC client is the kubelet's, up to Kubernetes 1.30), as an operator uses it:
// one crictl process per command against one stack, and the tests assert what
// the operator sees (tables, the JSON of inspect*, exit codes, messages).
//
// Where another runtime's answer is the standard, the test says which: these
// outputs were compared with Debian's containerd 1.6.20 (its CRI plugin) driven
// by the same crictl. Messages that come from crictl itself (its "Deleted:" and
// "Stopped sandbox" lines, its exit codes) are the same whatever the runtime.
//
// crictl 1.26.1 has no `events` command (`crictl --help` lists none), so
// GetContainerEvents is not driven from here. `statsp` it has, and is tested.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { buildImage, pushImage, type BuiltImage } from '@berth/oci';
import { busyboxRootfs, freeLoopbackPort, removeAllPods, startRegistry, startStack, waitFor, type RegistryHandle, type StackHandle } from '@berth/testing';
import { Crictl, crictlBinary, parseTable, type CrictlProcess, type CrictlTerminal } from './crictl-cli.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const workDir = mkdtempSync('/var/tmp/berth-e2e-crictl-');
const logRoot = join(workDir, 'logs');

let stack: StackHandle;
let registry: RegistryHandle;
let crictl: Crictl;
let busybox: BuiltImage;
let other: BuiltImage;
/** host:port/test/busybox */
let repo = '';
/** The busybox image's tag the containers run, and a second tag of the same image. */
let imageName = '';
let extraName = '';
/** A second image (one more layer), for rmi. */
let otherName = '';
/** Processes and terminals a test started: whatever a failed test left goes in `after`. */
const started: (CrictlProcess | CrictlTerminal)[] = [];

const hex = (digest: string) => digest.replace(/^sha256:/, '');
/** crictl's tables show ids truncated to 13 characters. */
const shown = (id: string) => hex(id).slice(0, 13);
/** The short id a user types: the first 12 characters, as Docker prints them. */
const short = (id: string) => hex(id).slice(0, 12);
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

before(async () => {
  const binary = crictlBinary(); // throws (the suite fails) when there is no crictl
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  // The outputs asserted below are crictl 1.26.1's.
  if (version !== 'crictl version 1.26.1') throw new Error(`${binary} is ${JSON.stringify(version)}; this suite pins the output of crictl version 1.26.1`);

  registry = await startRegistry();
  const config = { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] };
  const base = busyboxRootfs();
  busybox = await buildImage({ layers: [base], config });
  other = await buildImage({ layers: [base, [{ type: 'file', path: '/marker', content: 'other\n' }]], config });
  await pushImage(registry.url, 'test/busybox', 'crictl', busybox);
  await pushImage(registry.url, 'test/busybox', 'extra', busybox);
  await pushImage(registry.url, 'test/other', '1', other);
  repo = `${registry.host}/test/busybox`;
  imageName = `${repo}:crictl`;
  extraName = `${repo}:extra`;
  otherName = `${registry.host}/test/other:1`;
  stack = await startStack();
  crictl = new Crictl(stack.socket, binary);
});

after(async () => {
  try {
    for (const p of started) {
      if ('child' in p) await p.kill();
      else p.kill();
    }
    if (stack !== undefined) await removeAllPods(stack);
    await stack?.stop().catch((err: Error) => {
      // A stack that leaves a mount behind fails the suite; the machine is cleaned up all the same.
      const left = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(`${stack.dir}/`));
      for (const m of left.reverse()) execFileSync('umount', ['-l', m]);
      rmSync(stack.dir, { recursive: true, force: true });
      throw new Error(`stopping the stack: ${err.message}; mounts left behind: ${left.join(', ') || 'none'}`);
    });
  } finally {
    await registry?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
});

/** Writes a CRI config (PodSandboxConfig or ContainerConfig, in the protobuf JSON crictl reads) to a file. */
function configFile(name: string, config: object): string {
  const path = join(workDir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

function podConfigFile(name: string, labels: Record<string, string>): string {
  return configFile(`pod-${name}`, {
    metadata: { name, namespace: 'crictl', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logRoot, name),
    labels,
    port_mappings: [{ protocol: 0, container_port: 8080, host_port: 0 }],
    linux: { security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } },
  });
}

function containerConfigFile(name: string, command: string[], extra: object = {}): string {
  return configFile(`ctr-${name}`, { metadata: { name, attempt: 0 }, image: { image: imageName }, command, log_path: `${name}.log`, labels: { c: name }, ...extra });
}

/** A plain GET on a fresh connection: status and body. */
function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.end();
  });
}

/** `crictl inspect` of a container, once `done` holds for it. */
async function inspectUntil(id: string, what: string, done: (status: any) => boolean, ms = 30_000): Promise<any> {
  return waitFor(what, async () => {
    const s = (await crictl.json(['inspect', id])).status;
    return done(s) ? s : undefined;
  }, ms);
}

function spawnTracked(args: string[], options: { input?: string; keepStdin?: boolean } = {}): CrictlProcess {
  const p = crictl.spawn(args, options);
  started.push(p);
  return p;
}

function terminalTracked(args: string[], size: { cols: number; rows: number }): CrictlTerminal {
  const t = crictl.terminal(args, size);
  started.push(t);
  return t;
}

/** `promise`, or a failure naming `what` (and what `detail` says then) after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string, detail: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what} ${detail()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves within `ms` with the process's end, or fails naming what it printed. */
function endsWithin(p: CrictlProcess, ms: number, what: string) {
  return within(p.exited, ms, what, () => `(stdout ${JSON.stringify(p.stdout())}, stderr ${JSON.stringify(p.stderr())})`);
}

/** Waits until `seen()` holds; the failure shows what `detail` says at that moment. */
async function until(what: string, seen: () => boolean, detail: () => string, ms = 30_000): Promise<void> {
  try {
    await waitFor(what, () => (seen() ? true : undefined), ms);
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${detail()}`);
  }
}

/**
 * Sends `send()` until `seen()` holds, again each second: a stream that has
 * not joined the container yet may not pass on the first one.
 */
async function sendUntil(what: string, send: () => void, seen: () => boolean, detail: () => string, ms = 30_000): Promise<void> {
  let last = 0;
  await until(what, () => {
    if (seen()) return true;
    if (Date.now() - last >= 1000) {
      last = Date.now();
      send();
    }
    return false;
  }, detail, ms);
}

describe('crictl: the runtime', () => {
  test('version prints the CRI version, the runtime name berth, its version and API v1', async () => {
    const r = await crictl.run(['version']);
    assert.equal(r.code, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual(lines(r.stdout), ['Version:  0.1.0', 'RuntimeName:  berth', `RuntimeVersion:  ${pkg.version}`, 'RuntimeApiVersion:  v1']);
  });

  test('info prints the Status conditions (runtime and network ready) and the verbose info; info -q the conditions only', async () => {
    const info = await crictl.json(['info']);
    const conditions = Object.fromEntries((info.status.conditions as { type: string; status: boolean }[]).map((c) => [c.type, c.status]));
    assert.deepEqual(conditions, { RuntimeReady: true, NetworkReady: true });
    assert.equal(info.config?.socket, stack.socket, 'the verbose info carries the running configuration');
    const quiet = await crictl.json(['info', '-q']);
    assert.deepEqual(Object.keys(quiet), ['status']);
    assert.deepEqual(quiet.status, info.status);
  });
});

describe('crictl: images', () => {
  test('pull prints the image id; a second tag of the same image is the same id', async () => {
    // crictl 1.26.1 words every successful pull "Image is up to date for <id>", whatever the runtime.
    assert.equal(await crictl.ok(['pull', imageName]), `Image is up to date for ${busybox.configDigest}\n`);
    assert.equal(await crictl.ok(['pull', extraName]), `Image is up to date for ${busybox.configDigest}\n`);
  });

  test('pull of a tag the registry does not have fails with NotFound', async () => {
    const r = await crictl.run(['pull', `${registry.host}/test/nosuch:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /level=fatal msg="pulling image: rpc error: code = NotFound desc = [^"]*test\/nosuch:1/);
  });

  test('images lists each tag with its image id and size; -q the ids, once per image; --digests the manifest digest; --no-trunc whole ids', async () => {
    const table = parseTable(await crictl.ok(['images']));
    assert.deepEqual(table.header, ['IMAGE', 'TAG', 'IMAGE ID', 'SIZE']);
    const ours = table.rows.filter((r) => r['IMAGE'] === repo);
    assert.deepEqual(ours.map((r) => r['TAG']).sort(), ['crictl', 'extra']);
    for (const r of ours) {
      assert.equal(r['IMAGE ID'], shown(busybox.configDigest));
      assert.match(r['SIZE']!, /^\d+(\.\d+)?[kMG]?B$/);
    }
    const ids = lines(await crictl.ok(['images', '-q']));
    assert.equal(ids.filter((id) => id === busybox.configDigest).length, 1, ids.join('\n'));
    assert.ok(ids.every((id) => /^sha256:[0-9a-f]{64}$/.test(id)), ids.join('\n'));
    const digests = parseTable(await crictl.ok(['images', '--digests']));
    assert.deepEqual(digests.header, ['IMAGE', 'TAG', 'DIGEST', 'IMAGE ID', 'SIZE']);
    const row = digests.rows.find((r) => r['IMAGE'] === repo && r['TAG'] === 'crictl');
    assert.equal(row?.['DIGEST'], shown(busybox.manifestDigest));
    const whole = parseTable(await crictl.ok(['images', '--no-trunc'])).rows.find((r) => r['IMAGE'] === repo);
    assert.equal(whole?.['IMAGE ID'], busybox.configDigest);
  });

  test('images NAME and images ID-PREFIX list only that image', async () => {
    // Berth takes the filter as one image's reference (tag, digest, id or id prefix); containerd 1.6.20 ignores it and lists every image.
    for (const filter of [imageName, short(busybox.configDigest)]) {
      const rows = parseTable(await crictl.ok(['images', filter])).rows;
      assert.deepEqual(rows.map((r) => `${r['IMAGE']}:${r['TAG']} ${r['IMAGE ID']}`).sort(), [`${extraName} ${shown(busybox.configDigest)}`, `${imageName} ${shown(busybox.configDigest)}`].sort(), filter);
    }
    assert.deepEqual(parseTable(await crictl.ok(['images', `${registry.host}/test/nosuch:1`])).rows, []);
  });

  test('inspecti by tag and by a 12-character id prefix shows the id, tags, repo digests and size; an unknown image fails', async () => {
    for (const ref of [imageName, short(busybox.configDigest)]) {
      const { status } = await crictl.json(['inspecti', ref]);
      assert.equal(status.id, busybox.configDigest, ref);
      assert.deepEqual([...status.repoTags].sort(), [extraName, imageName].sort());
      assert.deepEqual(status.repoDigests, [`${repo}@${busybox.manifestDigest}`]);
      assert.ok(Number(status.size) > 0, status.size);
    }
    const r = await crictl.run(['inspecti', `${registry.host}/test/nosuch:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such image \\"[^"]*test\/nosuch:1\\" present/);
  });

  test('imagefsinfo reports the filesystem holding the store, with bytes and inodes used', async () => {
    const { status } = await crictl.json(['imagefsinfo']);
    // The kubelet finds the image filesystem from this path: it must be on the filesystem of Berth's store.
    const filesystem = (path: string) => execFileSync('df', ['--output=target', path], { encoding: 'utf8' }).trim().split('\n').at(-1);
    assert.ok(existsSync(status.fsId.mountpoint), status.fsId.mountpoint);
    assert.equal(filesystem(status.fsId.mountpoint), filesystem(join(stack.dir, 'state')));
    const image = await crictl.json(['inspecti', imageName]);
    assert.ok(Number(status.usedBytes.value) >= Number(image.status.size), `${status.usedBytes.value} bytes used, the image alone is ${image.status.size}`);
    assert.ok(Number(status.inodesUsed.value) > 0);
    assert.ok(Number(BigInt(status.timestamp) / 1_000_000n) > Date.now() - 10 * 60_000, 'a recent timestamp');
  });

  test('rmi of one of two tags removes that tag only; crictl lists every tag the image had as Deleted', async () => {
    const r = await crictl.run(['rmi', extraName]);
    assert.equal(r.code, 0, r.stderr);
    // crictl 1.26.1 prints each repo tag ImageStatus gave before the removal, whatever the runtime removed.
    assert.deepEqual(lines(r.stdout).sort(), [`Deleted: ${extraName}`, `Deleted: ${imageName}`].sort());
    // Berth removes only the tag asked for (as `docker rmi TAG` does); containerd 1.6.20 removes the image with all its tags.
    const left = parseTable(await crictl.ok(['images'])).rows.filter((x) => x['IMAGE'] === repo);
    assert.deepEqual(left.map((x) => x['TAG']), ['crictl']);
    const { status } = await crictl.json(['inspecti', imageName]);
    assert.deepEqual(status.repoTags, [imageName]);
  });

  test('rmi by a 12-character id prefix, by the last tag and by the full id (an image pulled by digest) removes the image', async () => {
    const otherId = other.configDigest;
    const gone = async (how: string) => {
      assert.ok(!lines(await crictl.ok(['images', '-q'])).includes(otherId), `${how}: still listed`);
      const r = await crictl.run(['inspecti', otherId]);
      assert.equal(r.code, 1, `${how}: inspecti still finds it`);
      assert.match(r.stderr, /no such image/);
    };

    assert.equal(await crictl.ok(['pull', otherName]), `Image is up to date for ${otherId}\n`);
    assert.equal(await crictl.ok(['rmi', short(otherId)]), `Deleted: ${otherName}\n`);
    await gone('rmi ID-PREFIX');

    await crictl.ok(['pull', otherName]);
    // The image's last tag: containerd prints the same and removes the image.
    assert.equal(await crictl.ok(['rmi', otherName]), `Deleted: ${otherName}\n`);
    await gone('rmi LAST-TAG');

    const byDigest = `${registry.host}/test/other@${other.manifestDigest}`;
    assert.equal(await crictl.ok(['pull', byDigest]), `Image is up to date for ${otherId}\n`);
    const row = parseTable(await crictl.ok(['images', short(otherId)])).rows;
    assert.deepEqual(row.map((x) => `${x['IMAGE']} ${x['TAG']}`), [`${registry.host}/test/other <none>`]);
    // No tag: crictl names the image by its digest reference (containerd's output is the same).
    assert.equal(await crictl.ok(['rmi', otherId]), `Deleted: ${byDigest}\n`);
    await gone('rmi FULL-ID');
    assert.deepEqual((await crictl.json(['inspecti', imageName])).status.id, busybox.configDigest, 'the other image is still there');
  });

  test('rmi of an image that is not there fails', async () => {
    const r = await crictl.run(['rmi', `${registry.host}/test/nosuch:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /level=error msg="no such image [^"]*test\/nosuch:1"/);
    assert.match(r.stderr, /level=fatal msg="unable to remove the image\(s\)"/);
  });
});

describe('crictl: pods and containers', () => {
  const pods = { web: '', db: '' };
  const ctrs = { ticker: '', web: '', cat: '', once: '', shell: '', counter: '', idle: '' };
  let webPodFile = '';
  let dbPodFile = '';

  /** crictl create POD CTR.json POD.json, then start; gives the full id. */
  async function run(pod: 'web' | 'db', name: keyof typeof ctrs, command: string[], extra: object = {}): Promise<string> {
    const id = (await crictl.ok(['create', short(pods[pod]), containerConfigFile(name, command, extra), pod === 'web' ? webPodFile : dbPodFile])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(await crictl.ok(['start', id]), `${id}\n`);
    ctrs[name] = id;
    return id;
  }

  test('runp POD.json prints the new pod id', async () => {
    webPodFile = podConfigFile('web', { app: 'web', tier: 'front' });
    dbPodFile = podConfigFile('db', { app: 'db' });
    pods.web = (await crictl.ok(['runp', webPodFile])).trim();
    pods.db = (await crictl.ok(['runp', dbPodFile])).trim();
    for (const id of Object.values(pods)) assert.match(id, /^[0-9a-f]{64}$/);
  });

  test('pods lists both Ready, with name, namespace, attempt and the default runtime', async () => {
    const table = parseTable(await crictl.ok(['pods']));
    assert.deepEqual(table.header, ['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'RUNTIME']);
    const rows = table.rows.map((r) => `${r['POD ID']} ${r['STATE']} ${r['NAME']} ${r['NAMESPACE']} ${r['ATTEMPT']} ${r['RUNTIME']}`).sort();
    assert.deepEqual(rows, [`${shown(pods.db)} Ready db crictl 0 (default)`, `${shown(pods.web)} Ready web crictl 0 (default)`].sort());
    assert.deepEqual(lines(await crictl.ok(['pods', '-q'])).sort(), Object.values(pods).sort());
  });

  test('pods --name (a regular expression), --label, --state, --namespace and --id filter', async () => {
    const names = async (...args: string[]) => parseTable(await crictl.ok(['pods', ...args])).rows.map((r) => r['NAME']).sort();
    assert.deepEqual(await names('--name', 'web'), ['web']);
    assert.deepEqual(await names('--name', '^d'), ['db']);
    assert.deepEqual(await names('--name', 'nomatch'), []);
    assert.deepEqual(await names('--label', 'app=web'), ['web']);
    assert.deepEqual(await names('--label', 'app=web', '--label', 'tier=front'), ['web']);
    assert.deepEqual(await names('--label', 'app=db', '--label', 'tier=front'), []);
    assert.deepEqual(await names('--label', 'app=nope'), []);
    assert.deepEqual(await names('--state', 'ready'), ['db', 'web']);
    assert.deepEqual(await names('--state', 'notready'), []);
    assert.deepEqual(await names('--namespace', 'crictl'), ['db', 'web']);
    assert.deepEqual(await names('--namespace', 'kube-system'), []);
    assert.deepEqual(await names('--id', short(pods.db)), ['db']);
    assert.deepEqual(lines(await crictl.ok(['pods', '-q', '--state', 'ready', '--name', 'web'])), [pods.web]);
  });

  test('inspectp by short and full id shows the pod status: metadata, Ready, the pod IP, labels, namespaces', async () => {
    for (const ref of [short(pods.web), pods.web]) {
      const { status, info } = await crictl.json(['inspectp', ref]);
      assert.equal(status.id, pods.web);
      assert.deepEqual(status.metadata, { attempt: 0, name: 'web', namespace: 'crictl', uid: 'uid-web' });
      assert.equal(status.state, 'SANDBOX_READY');
      assert.match(status.network.ip, /^10\.88\.\d+\.\d+$/);
      assert.deepEqual(status.labels, { app: 'web', tier: 'front' });
      assert.deepEqual(status.linux.namespaces.options, { ipc: 'POD', network: 'POD', pid: 'POD', targetId: '', usernsOptions: null });
      assert.ok(Number(info.pid) > 0 && existsSync(`/proc/${info.pid}`), 'the verbose info names the running sandbox process');
    }
    const r = await crictl.run(['inspectp', 'deadbeef0000']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /getting the pod sandbox status for \\"deadbeef0000\\": rpc error: code = NotFound/);
  });

  test('create prints the container id; ps -a shows it Created, ps (running only) does not; start prints what it was given', async () => {
    const file = containerConfigFile('ticker', ['sh', '-c', 'i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done']);
    const id = (await crictl.ok(['create', short(pods.web), file, webPodFile])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    ctrs.ticker = id;
    const all = parseTable(await crictl.ok(['ps', '-a']));
    assert.deepEqual(all.header, ['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID', 'POD']);
    const row = all.rows.find((r) => r['CONTAINER'] === shown(id));
    // POD is the io.kubernetes.pod.name label, which only the kubelet sets: "unknown" here, as with containerd.
    assert.deepEqual(row && [row['IMAGE'], row['STATE'], row['NAME'], row['ATTEMPT'], row['POD ID'], row['POD']], [imageName, 'Created', 'ticker', '0', shown(pods.web), 'unknown']);
    assert.equal((await crictl.json(['inspect', short(id)])).status.state, 'CONTAINER_CREATED');
    assert.ok(!lines(await crictl.ok(['ps', '-q'])).includes(id));
    assert.equal(await crictl.ok(['start', short(id)]), `${short(id)}\n`);
    const running = parseTable(await crictl.ok(['ps'])).rows.find((r) => r['CONTAINER'] === shown(id));
    assert.equal(running?.['STATE'], 'Running');
  });

  test('more containers start in both pods (create with a short pod id, start with the full id)', async () => {
    await run('web', 'web', ['sh', '-c', 'mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www']);
    await run('web', 'cat', ['cat'], { stdin: true });
    await run('web', 'once', ['cat'], { stdin: true, stdin_once: true });
    await run('web', 'shell', ['sh'], { stdin: true, tty: true });
    await run('db', 'idle', ['sleep', '100000']);
    const states = parseTable(await crictl.ok(['ps'])).rows.map((r) => `${r['NAME']} ${r['STATE']}`).sort();
    assert.deepEqual(states, ['cat Running', 'idle Running', 'once Running', 'shell Running', 'ticker Running', 'web Running']);
  });

  test('ps --pod (short and full id), --name, --label, --state, --id and -q filter', async () => {
    const names = async (...args: string[]) => parseTable(await crictl.ok(['ps', ...args])).rows.map((r) => r['NAME']).sort();
    assert.deepEqual(await names('--pod', short(pods.web)), ['cat', 'once', 'shell', 'ticker', 'web']);
    assert.deepEqual(await names('--pod', pods.db), ['idle']);
    assert.deepEqual(await names('--name', 'ticker'), ['ticker']);
    assert.deepEqual(await names('--name', '^(cat|once)$'), ['cat', 'once']);
    assert.deepEqual(await names('--label', 'c=idle'), ['idle']);
    assert.deepEqual(await names('--label', 'c=nope'), []);
    assert.deepEqual(await names('--state', 'running', '--pod', pods.db), ['idle']);
    assert.deepEqual(await names('-a', '--state', 'exited'), []);
    assert.deepEqual(await names('--id', short(ctrs.web)), ['web']);
    assert.deepEqual(lines(await crictl.ok(['ps', '-q', '--pod', short(pods.db)])), [ctrs.idle]);
  });

  test('inspect by short and full id shows the container status and its process', async () => {
    for (const ref of [short(ctrs.ticker), ctrs.ticker]) {
      const { status, info } = await crictl.json(['inspect', ref]);
      assert.equal(status.id, ctrs.ticker);
      assert.deepEqual(status.metadata, { attempt: 0, name: 'ticker' });
      assert.equal(status.state, 'CONTAINER_RUNNING');
      assert.equal(status.image.image, imageName);
      assert.equal(status.imageRef, busybox.configDigest);
      assert.equal(status.logPath, join(logRoot, 'web', 'ticker.log'));
      assert.deepEqual(status.labels, { c: 'ticker' });
      assert.ok(Date.parse(status.startedAt) >= Date.parse(status.createdAt), `${status.createdAt} ${status.startedAt}`);
      assert.equal(info.sandboxID, pods.web);
      assert.ok(Number(info.pid) > 0 && existsSync(`/proc/${info.pid}`), 'the verbose info names the running process');
    }
    const r = await crictl.run(['inspect', 'deadbeef0000']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /getting the status of the container \\"deadbeef0000\\": rpc error: code = NotFound/);
  });

  test('logs -f follows new lines, stdout and stderr apart, and ends when the container exits', async () => {
    const id = await run('web', 'counter', ['sh', '-c', 'echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second; echo to-stderr >&2']);
    const follow = spawnTracked(['logs', '-f', short(id)]);
    await until('the first line from logs -f', () => follow.stdout() === 'first\n', () => JSON.stringify([follow.stdout(), follow.stderr()]));
    assert.equal(follow.child.exitCode, null, 'logs -f still follows the running container');
    await crictl.ok(['exec', '-s', id, 'touch', '/tmp/go']);
    const r = await endsWithin(follow, 30_000, 'logs -f to end with the container');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'first\nsecond\n');
    assert.equal(r.stderr, 'to-stderr\n');
    const s = await inspectUntil(id, 'the counter to exit', (st) => st.state === 'CONTAINER_EXITED');
    assert.equal(s.exitCode, 0);
    assert.equal(s.reason, 'Completed');
    assert.ok(Date.parse(s.finishedAt) >= Date.parse(s.startedAt));
    assert.deepEqual(parseTable(await crictl.ok(['ps', '-a', '--state', 'exited'])).rows.map((x) => x['NAME']), ['counter']);
  });

  test('logs --tail N prints the last N lines; -t prefixes their timestamps', async () => {
    const tail = await crictl.run(['logs', '--tail', '2', short(ctrs.counter)]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout, 'second\n');
    assert.equal(tail.stderr, 'to-stderr\n');
    const stamped = await crictl.run(['logs', '-t', '--tail', '1', ctrs.counter]);
    assert.match(stamped.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z to-stderr\n$/);
    assert.equal(stamped.stdout, '');
    const ticks = lines(await crictl.ok(['logs', '--tail', '3', short(ctrs.ticker)]));
    assert.equal(ticks.length, 3, ticks.join('\n'));
    const n = ticks.map((l) => Number(/^tick (\d+)$/.exec(l)?.[1]));
    assert.deepEqual(n, [n[0]!, n[0]! + 1, n[0]! + 2], ticks.join('\n'));
    const missing = await crictl.run(['logs', 'deadbeef0000']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NotFound/);
  });

  test('exec -s prints the output; a non-zero exit or a timeout fails crictl with the code or "timed out"', async () => {
    // crictl 1.26.1 prints the command's stdout, then its stderr, both on its stdout.
    assert.deepEqual(lines(await crictl.ok(['exec', '-s', short(ctrs.ticker), 'sh', '-c', 'echo out; echo err >&2; hostname'])), ['out', 'web', 'err']);
    // A non-zero exit: crictl 1.26.1 exits 1 with the code in its message (against containerd too).
    const failed = await crictl.run(['exec', '-s', ctrs.ticker, 'sh', '-c', 'echo bad >&2; exit 3']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /execing command in container synchronously: command 'sh -c echo bad >&2; exit 3' exited with 3: bad/);
    const t0 = Date.now();
    const slow = await crictl.run(['exec', '-s', '--timeout', '1', short(ctrs.ticker), 'sleep', '30']);
    assert.equal(slow.code, 1);
    assert.match(slow.stderr, /code = DeadlineExceeded/);
    assert.match(slow.stderr, /execing command in container synchronously: command \\"sleep 30\\" timed out/);
    assert.ok(Date.now() - t0 < 15_000, `${Date.now() - t0} ms`);
    const none = await crictl.run(['exec', '-s', 'deadbeef0000', 'true']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /code = NotFound/);
  });

  test('exec (streamed) keeps stdout and stderr apart; a non-zero exit fails crictl naming the code', async () => {
    const r = await crictl.run(['exec', short(ctrs.ticker), 'sh', '-c', 'echo out; echo err >&2']);
    assert.deepEqual(r, { code: 0, stdout: 'out\n', stderr: 'err\n' });
    const failed = await crictl.run(['exec', ctrs.ticker, 'sh', '-c', 'echo before; exit 5']);
    assert.equal(failed.code, 1);
    assert.equal(failed.stdout, 'before\n');
    assert.match(failed.stderr, /execing command in container: command terminated with exit code 5/);
  });

  test('exec -i passes piped stdin to the command: cat echoes it, wc counts 100 kB of it', async () => {
    assert.equal(await crictl.ok(['exec', '-i', short(ctrs.ticker), 'cat'], { input: 'hello\nworld\n' }), 'hello\nworld\n');
    assert.equal((await crictl.ok(['exec', '-i', ctrs.ticker, 'wc', '-c'], { input: Buffer.alloc(100_000, 'x') })).trim(), '100000');
  });

  test('exec -it runs on a terminal of the terminal’s size, follows a resize, takes typed input, fails naming the exit code', async () => {
    const script = 'tty; stty size; while [ "$(stty size)" = "30 100" ]; do sleep 0.1; done; echo "now $(stty size)"; read line; echo "got $line"; exit 4';
    const term = terminalTracked(['exec', '-it', short(ctrs.ticker), 'sh', '-c', script], { cols: 100, rows: 30 });
    await until('the first size', () => /\/dev\/pts\/\d+\r\n30 100\r\n/.test(term.output()), () => JSON.stringify(term.output()));
    term.resize(120, 40);
    await until('the new size', () => term.output().includes('now 40 120'), () => JSON.stringify(term.output()));
    term.write('typed\r');
    const code = await within(term.exited, 30_000, 'crictl exec -it to end', () => JSON.stringify(term.output()));
    assert.equal(code, 1, term.output());
    assert.match(term.output(), /got typed\r\n/);
    assert.match(term.output(), /command terminated with exit code 4/);
  });

  test('attach streams the running container’s output', async () => {
    const attach = spawnTracked(['attach', short(ctrs.ticker)]);
    await until('two ticks from attach', () => /tick \d+\n[^]*tick \d+\n/.test(attach.stdout()), () => JSON.stringify([attach.stdout(), attach.stderr()]));
    await attach.kill();
  });

  test('attach -i sends piped stdin to the container (created with stdin), whose output comes back and is logged', async () => {
    const attach = spawnTracked(['attach', '-i', ctrs.cat], { keepStdin: true });
    const wrote = (text: string) => sendUntil(`"${text.trim()}" back through attach`, () => attach.child.stdin!.write(text), () => attach.stdout().includes(text), () => JSON.stringify([attach.stdout(), attach.stderr()]));
    await wrote('hello\n');
    await wrote('world\n');
    const log = await waitFor('both lines in the log', async () => {
      const out = await crictl.ok(['logs', short(ctrs.cat)]);
      return out.includes('hello\n') && out.includes('world\n') ? out : undefined;
    });
    assert.match(log, /hello\n(hello\n)*world\n/);
    await attach.kill();
  });

  test(
    'attach -i ends when its stdin ends; the container (not stdin_once) keeps running',
    async () => {
      // containerd 1.6: `echo hi | crictl attach -i CAT` prints "hi" and exits 0 at once; the container runs on.
      const attach = spawnTracked(['attach', '-i', short(ctrs.cat)], { input: 'piped\n' });
      const r = await endsWithin(attach, 10_000, 'attach -i to end with its stdin');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await crictl.json(['inspect', ctrs.cat])).status.state, 'CONTAINER_RUNNING');
    },
  );

  test('attach -i to a stdin_once container: the end of stdin closes the container’s, it exits and the attach ends', async () => {
    const attach = spawnTracked(['attach', '-i', short(ctrs.once)], { input: 'only once\n' });
    const r = await endsWithin(attach, 30_000, 'attach -i to end with the container');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'only once\n');
    const s = await inspectUntil(ctrs.once, 'the stdin_once container to exit', (st) => st.state === 'CONTAINER_EXITED');
    assert.equal(s.exitCode, 0);
  });

  test('attach -it to a TTY container: typed commands run in its shell; its exit ends the attach', async () => {
    const term = terminalTracked(['attach', '-it', ctrs.shell], { cols: 80, rows: 24 });
    await sendUntil("the shell's answer through attach -it", () => term.write('echo hi-$((6*7))\r'), () => term.output().includes('hi-42'), () => JSON.stringify(term.output()));
    term.write('exit 4\r');
    const code = await within(term.exited, 30_000, 'crictl attach -it to end', () => JSON.stringify(term.output()));
    // crictl 1.26.1's attach does not report the container's exit code (it exits 0 against containerd too).
    assert.equal(code, 0, term.output());
    const s = await inspectUntil(ctrs.shell, 'the shell to exit', (st) => st.state === 'CONTAINER_EXITED');
    assert.equal(s.exitCode, 4);
    assert.equal(s.reason, 'Error');
  });

  test('port-forward POD :PORT and LOCAL:PORT serve the pod’s HTTP server on a local port', async () => {
    await waitFor('httpd in the pod to answer', async () => ((await crictl.run(['exec', '-s', ctrs.web, 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'])).code === 0 ? true : undefined), 30_000);
    const forwardAndGet = async (args: string[], expectPort?: number) => {
      const forward = spawnTracked(['port-forward', ...args]);
      const line = await new Promise<string>((resolvePromise, reject) => {
        createInterface({ input: forward.child.stdout! }).on('line', (l) => /^Forwarding from 127\.0\.0\.1:/.test(l) && resolvePromise(l));
        void forward.exited.then((r) => reject(new Error(`port-forward exited ${r.code}: ${r.stderr}`)));
      });
      const port = Number(/^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$/.exec(line)?.[1]);
      if (expectPort !== undefined) assert.equal(port, expectPort, line);
      for (let i = 0; i < 2; i++) assert.deepEqual(await httpGet(`http://127.0.0.1:${port}/`), { status: 200, body: 'hello from the pod\n' });
      await waitFor('crictl to report the connections', () => (forward.stdout().split(`Handling connection for ${port}\n`).length - 1 >= 2 ? true : undefined));
      await forward.kill();
    };
    await forwardAndGet([short(pods.web), ':8080']);
    const local = await freeLoopbackPort();
    await forwardAndGet([pods.web, `${local}:8080`], local);
  });

  test('port-forward to a port nothing listens on: the connection closes and crictl reports the error', async () => {
    const forward = spawnTracked(['port-forward', short(pods.web), ':9']);
    const port = await waitFor('the local port', () => /Forwarding from 127\.0\.0\.1:(\d+) -> 9\n/.exec(forward.stdout())?.[1], 30_000);
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), /socket hang up|ECONNRESET/);
    await until('the forwarding error', () => forward.stderr().includes(`an error occurred forwarding ${port} -> 9`), () => JSON.stringify(forward.stderr()));
    await forward.kill();
  });

  test('SIGTERM to the executor with crictl exec -i open: the executor exits without waiting for the client, crictl ends, the container runs on', async () => {
    // Operators expect a bounded stop with a client attached (systemd's TimeoutStopSec, a DaemonSet's
    // grace period), as containerd's is; an open `crictl exec -i` used to hold the executor until it went.
    const exec = spawnTracked(['exec', '-i', short(ctrs.ticker), 'sleep', '4321'], { keepStdin: true });
    const sleeping = async () => (await crictl.ok(['exec', '-s', ctrs.ticker, 'ps', '-o', 'args'])).split('\n').some((l) => l.trim() === 'sleep 4321');
    await waitFor('the exec to run', async () => ((await sleeping()) ? true : undefined));
    const executor = stack.pid('executor');
    process.kill(executor, 'SIGTERM');
    // Well inside berthd's 10 s grace, with the client still connected and silent.
    await waitFor('the executor to exit', async () => (existsSync(`/proc/${executor}`) ? undefined : true), 8000);
    await endsWithin(exec, 10_000, 'crictl exec -i to end with the executor');
    await waitFor('the container Running through a new executor', async () => ((await crictl.json(['inspect', ctrs.ticker]).catch(() => undefined))?.status.state === 'CONTAINER_RUNNING' ? true : undefined), 30_000);
    assert.notEqual(stack.pid('executor'), executor);
    assert.equal(await sleeping(), false, 'the exec’s process went with its stream');
  });

  test('stats lists running containers with CPU, memory and writable-layer use; -o json --id gives one container', async () => {
    const table = parseTable(await crictl.ok(['stats']));
    assert.deepEqual(table.header, ['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES']);
    assert.deepEqual(table.rows.map((r) => r['NAME']).sort(), ['cat', 'idle', 'ticker', 'web']);
    const ticker = table.rows.find((r) => r['CONTAINER'] === shown(ctrs.ticker));
    assert.match(ticker?.['CPU %'] ?? '', /^\d+\.\d\d$/);
    assert.match(ticker?.['MEM'] ?? '', /^\d+(\.\d+)?[kMG]?B$/);
    assert.match(ticker?.['DISK'] ?? '', /^\d+(\.\d+)?[kMG]?B$/);
    const byPod = parseTable(await crictl.ok(['stats', '--pod', short(pods.db)])).rows.map((r) => r['NAME']);
    assert.deepEqual(byPod, ['idle']);
    const { stats } = await crictl.json(['stats', '-o', 'json', '--id', short(ctrs.ticker)]);
    assert.equal(stats.length, 1);
    const [s] = stats;
    assert.equal(s.attributes.id, ctrs.ticker);
    assert.deepEqual(s.attributes.metadata, { name: 'ticker', attempt: 0 });
    assert.ok(Number(s.cpu.usageCoreNanoSeconds.value) > 0);
    assert.ok(Number(s.memory.workingSetBytes.value) > 0);
    assert.ok(Number(s.writableLayer.usedBytes.value) > 0);
  });

  test('statsp lists each pod’s CPU and memory; -o json --id gives one pod with its containers', async () => {
    // containerd 1.6.20 fails statsp for pods without a cgroup parent ("cgroupPath is empty"); Berth answers.
    const table = parseTable(await crictl.ok(['statsp']));
    assert.deepEqual(table.header, ['POD', 'POD ID', 'CPU %', 'MEM']);
    assert.deepEqual(table.rows.map((r) => `${r['POD']} ${r['POD ID']}`).sort(), [`db ${shown(pods.db)}`, `web ${shown(pods.web)}`]);
    for (const r of table.rows) assert.match(r['MEM']!, /^\d+(\.\d+)?[kMG]?B$/);
    const { stats } = await crictl.json(['statsp', '-o', 'json', '--id', short(pods.db)]);
    assert.equal(stats.length, 1);
    const [p] = stats;
    assert.equal(p.attributes.id, pods.db);
    assert.equal(p.attributes.metadata.name, 'db');
    assert.ok(Number(p.linux.cpu.usageCoreNanoSeconds.value) > 0);
    assert.ok(Number(p.linux.memory.workingSetBytes.value) > 0);
    assert.deepEqual((p.linux.containers as { attributes: { id: string } }[]).map((c) => c.attributes.id), [ctrs.idle]);
  });

  test('stop kills at once by default (137); stop -t sends the stop signal first (SIGTERM: 143)', async () => {
    assert.equal(await crictl.ok(['stop', short(ctrs.ticker)]), `${short(ctrs.ticker)}\n`);
    const killed = await inspectUntil(ctrs.ticker, 'the ticker to exit', (s) => s.state === 'CONTAINER_EXITED');
    // crictl's default --timeout 0: SIGKILL at once; containerd reports the same 137 and reason.
    assert.deepEqual([killed.exitCode, killed.reason], [137, 'Error']);
    const t0 = Date.now();
    assert.equal(await crictl.ok(['stop', '-t', '20', ctrs.web]), `${ctrs.web}\n`);
    assert.ok(Date.now() - t0 < 15_000, `httpd ends on SIGTERM without waiting out the timeout (${Date.now() - t0} ms)`);
    const termed = await inspectUntil(ctrs.web, 'httpd to exit', (s) => s.state === 'CONTAINER_EXITED');
    assert.equal(termed.exitCode, 143);
    assert.equal(parseTable(await crictl.ok(['ps', '-a', '--id', short(ctrs.web)])).rows[0]?.['STATE'], 'Exited');
  });

  test('rm of a running container needs -f; rm removes by short and full id; rm of a removed one fails', async () => {
    const running = await crictl.run(['rm', short(ctrs.cat)]);
    assert.equal(running.code, 1);
    assert.match(running.stderr, new RegExp(`container \\\\"${short(ctrs.cat)}\\\\" is running, please stop it first`));
    // -f: crictl stops it, then removes it, and prints the id for each (against containerd too).
    assert.equal(await crictl.ok(['rm', '-f', short(ctrs.cat)]), `${short(ctrs.cat)}\n${short(ctrs.cat)}\n`);
    assert.equal(await crictl.ok(['rm', short(ctrs.ticker)]), `${short(ctrs.ticker)}\n`);
    assert.equal(await crictl.ok(['rm', ctrs.web]), `${ctrs.web}\n`);
    const left = parseTable(await crictl.ok(['ps', '-a', '--pod', pods.web])).rows.map((r) => r['NAME']).sort();
    assert.deepEqual(left, ['counter', 'once', 'shell']);
    const again = await crictl.run(['rm', short(ctrs.ticker)]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /code = NotFound/);
    assert.match(again.stderr, /unable to remove container\(s\)/);
  });

  test('stopp by short id: the pod is NotReady and its containers exited', async () => {
    assert.equal(await crictl.ok(['stopp', short(pods.web)]), `Stopped sandbox ${short(pods.web)}\n`);
    const row = parseTable(await crictl.ok(['pods', '--id', pods.web])).rows[0];
    assert.equal(row?.['STATE'], 'NotReady');
    assert.deepEqual(lines(await crictl.ok(['pods', '-q', '--state', 'notready'])), [pods.web]);
    assert.equal((await crictl.json(['inspectp', short(pods.web)])).status.state, 'SANDBOX_NOTREADY');
    const states = parseTable(await crictl.ok(['ps', '-a', '--pod', short(pods.web)])).rows.map((r) => r['STATE']);
    assert.deepEqual([...new Set(states)], ['Exited']);
    assert.equal(await crictl.ok(['stopp', pods.web]), `Stopped sandbox ${pods.web}\n`, 'stopping a stopped pod succeeds');
  });

  test('rmp by full id removes the pod and its containers; rmp of a removed pod fails', async () => {
    assert.equal(await crictl.ok(['rmp', pods.web]), `Removed sandbox ${pods.web}\n`);
    assert.deepEqual(lines(await crictl.ok(['pods', '-q'])), [pods.db]);
    assert.deepEqual(parseTable(await crictl.ok(['ps', '-a'])).rows.map((r) => r['NAME']), ['idle']);
    const again = await crictl.run(['rmp', short(pods.web)]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`getting sandbox status of pod "${short(pods.web)}": rpc error: code = NotFound`));
  });

  test('rmp of a Ready pod needs -f; rmp -f by short id stops and removes it', async () => {
    const ready = await crictl.run(['rmp', short(pods.db)]);
    assert.equal(ready.code, 1);
    assert.match(ready.stderr, /is running, please stop it first/);
    assert.equal(await crictl.ok(['rmp', '-f', short(pods.db)]), `Stopped sandbox ${short(pods.db)}\nRemoved sandbox ${short(pods.db)}\n`);
    assert.deepEqual(lines(await crictl.ok(['pods', '-q'])), []);
    assert.deepEqual(lines(await crictl.ok(['ps', '-a', '-q'])), []);
    const r = await crictl.run(['inspect', ctrs.idle]);
    assert.equal(r.code, 1);
  });
});
