#!/usr/bin/env node
// Builds build/Release/berth_native.node with the node-gyp that ships inside
// npm, offline: headers come from the running Node's own install prefix
// (<prefix>/include/node, e.g. /usr/include/node), passed as --nodedir, so
// node-gyp never tries to download a header tarball. node-gyp run directly
// (not through npm) ignores .npmrc, hence the explicit flag.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const here = resolve(import.meta.dirname, '..');
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || prefix;
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  process.stderr.write(`native: no Node headers under ${nodedir}/include/node; set npm_config_nodedir\n`);
  process.exit(1);
}

const findNodeGyp = () => {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  const globalRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
  return join(globalRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
};

const r = spawnSync(process.execPath, [findNodeGyp(), 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], {
  cwd: here,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
