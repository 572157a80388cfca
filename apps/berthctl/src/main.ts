#!/usr/bin/env node
// berthctl: a CRI client for Berth's socket (the crictl of Berth).
import { parseArgs } from 'node:util';
import { BerthError } from '@berth/errors';
import { berthVersion } from '@berth/config';
import { imageFsInfoCommand, imagesCommand, infoCommand, inspectImageCommand, pullCommand, removeImagesCommand, versionCommand } from './commands.js';
import { connectCri, defaultSocket } from '@berth/client';
import { natsUrlFor, watchPullProgress } from './progress.js';

const usage = `usage: berthctl [--runtime-endpoint PATH] [--timeout SECONDS] COMMAND

Commands:
  version [-o text|json]   the runtime's name and versions
  info                     the runtime's status conditions and service details
  pull IMAGE [--creds U:P] pull an image
  images [-o text|json]    list images
  inspecti IMAGE           an image's status
  rmi IMAGE...             remove images (by id, tag or digest)
  imagefsinfo              usage of the image filesystem

The endpoint defaults to $BERTH_SOCKET or ${defaultSocket}.
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'runtime-endpoint': { type: 'string', short: 'r' },
      timeout: { type: 'string', short: 't', default: '30' },
      output: { type: 'string', short: 'o', default: 'text' },
      help: { type: 'boolean', short: 'h' },
      creds: { type: 'string' },
    },
  });
  const [command] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(usage);
    return values.help ? 0 : 2;
  }
  const timeoutS = Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error(`--timeout must be a positive number of seconds, not ${values.timeout}`);
  const endpoint = values['runtime-endpoint'] ?? process.env['BERTH_SOCKET'] ?? defaultSocket;
  const out = (text: string): void => void process.stdout.write(text);
  const cri = connectCri(endpoint, timeoutS * 1000);
  try {
    switch (command) {
      case 'version':
        if (values.output !== 'text' && values.output !== 'json') throw new Error('-o must be text or json');
        await versionCommand(cri, out, values.output);
        return 0;
      case 'info':
        await infoCommand(cri, out);
        return 0;
      case 'pull':
        if (positionals[1] === undefined) throw new Error('pull needs an image');
        {
          const { formatReference, parseReference } = await import('@berth/registry');
          const watcher = await watchPullProgress(natsUrlFor(endpoint), formatReference(parseReference(positionals[1])), process.stderr);
          await pullCommand(cri, out, positionals[1], values.creds, watcher);
        }
        return 0;
      case 'images':
        await imagesCommand(cri, out, values.output === 'json' ? 'json' : 'text');
        return 0;
      case 'inspecti':
        if (positionals[1] === undefined) throw new Error('inspecti needs an image');
        return await inspectImageCommand(cri, out, positionals[1]);
      case 'rmi':
        if (positionals.length < 2) throw new Error('rmi needs at least one image');
        await removeImagesCommand(cri, out, positionals.slice(1));
        return 0;
      case 'imagefsinfo':
        await imageFsInfoCommand(cri, out);
        return 0;
      default:
        process.stderr.write(`berthctl: unknown command ${JSON.stringify(command)}\n${usage}`);
        return 2;
    }
  } finally {
    cri.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const category = err instanceof BerthError ? ` (${err.category})` : '';
    process.stderr.write(`berthctl ${berthVersion}: ${err instanceof Error ? err.message : String(err)}${category}\n`);
    process.exit(1);
  },
);
