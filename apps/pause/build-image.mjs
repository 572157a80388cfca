#!/usr/bin/env node
// Packs dist/berth-pause as Berth's built-in sandbox image, an OCI image
// layout in dist/oci named berth.local/pause:<version>, so a node can run pods
// without reaching any registry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, writeOciLayout } from '@berth/oci';

const here = import.meta.dirname;
const { version } = JSON.parse(readFileSync(join(here, '../../package.json'), 'utf8'));
const image = await buildImage({
  layers: [[{ type: 'file', path: '/pause', source: join(here, 'dist/berth-pause'), mode: 0o755 }]],
  config: { Entrypoint: ['/pause'], User: '65535:65535', Labels: { 'io.berth.sandbox': 'true' } },
});
await writeOciLayout(join(here, 'dist/oci'), image, `berth.local/pause:${version}`);
process.stdout.write(`berth.local/pause:${version} ${image.manifestDigest}\n`);
