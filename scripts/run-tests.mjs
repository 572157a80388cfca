#!/usr/bin/env node
// Runs the compiled node:test files of one project (dist/**/*.test.js) and
// keeps a TAP copy under tmp/test-results/ so scripts/test can add up the
// pass and fail counts of every suite.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const [projectDir, ...extra] = process.argv.slice(2);
if (!projectDir) {
  process.stderr.write('usage: run-tests.mjs <project-dir> [node --test flags]\n');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const dist = join(root, projectDir, 'dist');
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
try {
  walk(dist);
} catch {
  // no dist: the project has not been built, which the caller's dependsOn prevents
}
if (files.length === 0) {
  process.stderr.write(`no test files under ${dist}\n`);
  process.exit(1);
}
const results = join(root, 'tmp', 'test-results');
mkdirSync(results, { recursive: true });
const tap = join(results, `${projectDir.replaceAll('/', '-')}.tap`);
const r = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tap}`,
    ...extra,
    ...files.sort(),
  ],
  { stdio: 'inherit', env: { ...process.env, OTEL_SDK_DISABLED: process.env.OTEL_SDK_DISABLED ?? 'true' } },
);
if (r.status !== 0) process.stderr.write(`${basename(projectDir)}: tests failed\n`);
process.exit(r.status ?? 1);
