import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { readOciLayout } from '@berth/oci';

const binary = join(import.meta.dirname, '../berth-pause');

function exitOf(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`exits 0 on ${signal}`, async () => {
    const child = spawn(binary, [], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(child.exitCode, null, 'still running before the signal');
    child.kill(signal);
    assert.deepEqual(await exitOf(child), { code: 0, signal: null });
  });
}

test('reaps orphans re-parented to it, as PID 1 of a new PID namespace', async () => {
  // A grandchild that exits while its parent is gone becomes pause's child;
  // without reaping it would stay a zombie in pause's namespace.
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', binary], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise((r) => setTimeout(r, 200));
  const pausePid = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim();
  // Enter pause's namespaces and leave an orphan that exits after 0.2 s.
  execFileSync('nsenter', ['-t', pausePid, '-p', '-m', '--', 'sh', '-c', '(sleep 0.2 &) ; exit 0']);
  await new Promise((r) => setTimeout(r, 800));
  const states = execFileSync('nsenter', ['-t', pausePid, '-p', '-m', '--', 'ps', '-eo', 'stat=,comm='], { encoding: 'utf8' });
  assert.doesNotMatch(states, /^Z/m, `no zombies left:\n${states}`);
  child.kill('SIGTERM');
  process.kill(Number(pausePid), 'SIGTERM');
  assert.equal((await exitOf(child)).code, 0);
});

test('is packed as an OCI image layout that verifies', async () => {
  const image = await readOciLayout(join(import.meta.dirname, '../oci'), 'berth.local/pause:0.1.0');
  assert.equal(image.blobs.size, 3);
});
