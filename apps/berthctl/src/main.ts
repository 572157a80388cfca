#!/usr/bin/env node
// berthctl: a CRI client for Berth's socket (the crictl of Berth).
import { parseArgs } from 'node:util';
import { BerthError } from '@berth/errors';
import { berthVersion } from '@berth/config';
import { infoCommand, versionCommand } from './commands.js';
import { connectCri, defaultSocket } from '@berth/client';

const usage = `usage: berthctl [--runtime-endpoint PATH] [--timeout SECONDS] COMMAND

Commands:
  version [-o text|json]   the runtime's name and versions
  info                     the runtime's status conditions and service details

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
