#!/usr/bin/env node
// berthctl: a CRI client for Berth's socket (the crictl of Berth).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BerthError } from '@berth/errors';
import { berthVersion } from '@berth/config';
import { imageFsInfoCommand, imagesCommand, infoCommand, inspectImageCommand, pullCommand, removeImagesCommand, versionCommand } from './commands.js';
import { connectCri, defaultSocket } from '@berth/client';
import { natsCredentialsFor, natsUrlFor, watchPullProgress } from './progress.js';
import { createCommand, eventsCommand, execSyncCommand, inspectCommand, logsCommand, podsCommand, psCommand, runPodCommand, statsCommand } from './runtime-commands.js';
import { attachCommand, execCommand, portForwardCommand, type StreamFlags } from './streaming-commands.js';

const usage = `usage: berthctl [--runtime-endpoint PATH] [--timeout SECONDS] COMMAND

Commands:
  version [-o text|json]   the runtime's name and versions
  info                     the runtime's status conditions and service details
  pull IMAGE [--creds U:P] pull an image
  images [-o text|json]    list images
  inspecti IMAGE           an image's status
  rmi IMAGE...             remove images (by id, tag or digest)
  imagefsinfo              usage of the image filesystem
  runp POD.json [--runtime H]  run a pod sandbox from a PodSandboxConfig
  pods [-o text|json]      list pod sandboxes
  stopp POD...             stop pod sandboxes
  rmp POD...               remove pod sandboxes
  create POD CTR.json POD.json  create a container from a ContainerConfig
  start CTR...             start containers
  stop [--timeout-stop S] CTR...  stop containers (default 10 s before SIGKILL)
  rm CTR...                remove containers
  ps [-a] [-o text|json]   list running (or all) containers
  inspect ID               a container's (or pod's) status, verbose
  logs [-f] CTR            a container's output (follow with -f)
  exec [-i] [-t] CTR CMD...  run a command in a container, streaming its
                           input (-i) and output, on a terminal with -t;
                           exits with the command's exit code
  exec --sync CTR CMD...   run a command and print its output when it ends
  attach [-i] [-t] CTR     attach to a running container's input and output
  port-forward POD [LOCAL:]REMOTE...  forward 127.0.0.1:LOCAL to the pod's
                           REMOTE port (REMOTE alone: the same port;
                           :REMOTE: any free port) until interrupted
  stats [-o text|json]     running containers' CPU, memory and disk
  events                   stream container and pod lifecycle events

The endpoint defaults to $BERTH_SOCKET or ${defaultSocket}.
`;

const globalOptions = {
  'runtime-endpoint': { type: 'string', short: 'r' },
  timeout: { type: 'string', short: 't', default: '30' },
  output: { type: 'string', short: 'o', default: 'text' },
  help: { type: 'boolean', short: 'h' },
  creds: { type: 'string' },
  runtime: { type: 'string', default: '' },
  all: { type: 'boolean', short: 'a' },
  follow: { type: 'boolean', short: 'f' },
  'timeout-stop': { type: 'string', default: '10' },
} satisfies ParseArgsConfig['options'];

const streamOptions = {
  interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  sync: { type: 'boolean', short: 's' },
} satisfies ParseArgsConfig['options'];

interface StreamArgs {
  flags: StreamFlags & { sync: boolean };
  /** The container id. */
  target: string | undefined;
  /** exec's command. */
  command: string[];
}

/**
 * `exec` and `attach` take their own flags between the command and the
 * container (crictl's -i and -t, and exec's --sync), and exec's command
 * after the container may have any flags: both are split off here, so the
 * global parse, whose -t is --timeout, sees neither.
 */
function splitStreamArgs(argv: string[]): { globalArgs: string[]; stream: StreamArgs } {
  const none = { globalArgs: argv, stream: { flags: { interactive: false, tty: false, sync: false }, target: undefined, command: [] } };
  const { tokens } = parseArgs({ args: argv, options: globalOptions, allowPositionals: true, strict: false, tokens: true });
  const at = tokens.find((t) => t.kind === 'positional')?.index;
  if (at === undefined || (argv[at] !== 'exec' && argv[at] !== 'attach')) return none;
  const rest = argv.slice(at + 1);
  let i = 0;
  while (i < rest.length && rest[i]!.startsWith('-')) i++;
  const { values } = parseArgs({ args: rest.slice(0, i), options: streamOptions });
  const command = rest.slice(i + 1);
  return {
    globalArgs: argv.slice(0, at + 1),
    stream: {
      flags: { interactive: values.interactive ?? false, tty: values.tty ?? false, sync: values.sync ?? false },
      target: rest[i],
      command: command[0] === '--' ? command.slice(1) : command,
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const { globalArgs, stream } = splitStreamArgs(argv);
  const { values, positionals } = parseArgs({ args: globalArgs, allowPositionals: true, options: globalOptions });
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
          const watcher = await watchPullProgress(natsUrlFor(endpoint), formatReference(parseReference(positionals[1])), process.stderr, natsCredentialsFor(endpoint));
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
      case 'runp':
        if (positionals[1] === undefined) throw new Error('runp needs a pod config file');
        await runPodCommand(cri, out, positionals[1], values.runtime ?? '');
        return 0;
      case 'pods':
        await podsCommand(cri, out, values.output === 'json' ? 'json' : 'text');
        return 0;
      case 'stopp':
      case 'rmp':
      case 'start':
      case 'stop':
      case 'rm': {
        const ids = positionals.slice(1);
        if (ids.length === 0) throw new Error(`${command} needs at least one id`);
        for (const id of ids) {
          if (command === 'stopp') await cri.runtime.stopPodSandbox({ podSandboxId: id });
          else if (command === 'rmp') await cri.runtime.removePodSandbox({ podSandboxId: id });
          else if (command === 'start') await cri.runtime.startContainer({ containerId: id });
          else if (command === 'stop') await cri.runtime.stopContainer({ containerId: id, timeout: BigInt(Number(values['timeout-stop'])) });
          else await cri.runtime.removeContainer({ containerId: id });
          out(`${id}\n`);
        }
        return 0;
      }
      case 'create':
        if (positionals.length !== 4) throw new Error('create needs POD-ID CONTAINER-CONFIG POD-CONFIG');
        await createCommand(cri, out, positionals[1]!, positionals[2]!, positionals[3]!);
        return 0;
      case 'ps':
        await psCommand(cri, out, values.all ?? false, values.output === 'json' ? 'json' : 'text');
        return 0;
      case 'inspect':
        if (positionals[1] === undefined) throw new Error('inspect needs an id');
        await inspectCommand(cri, out, positionals[1]);
        return 0;
      case 'logs':
        if (positionals[1] === undefined) throw new Error('logs needs a container id');
        await logsCommand(cri, out, (t) => void process.stderr.write(t), positionals[1], values.follow ?? false);
        return 0;
      case 'exec':
        if (stream.target === undefined || stream.command.length === 0) throw new Error('exec needs a container id and a command');
        if (!stream.flags.sync) return await execCommand(cri, stream.target, stream.command, stream.flags);
        if (stream.flags.interactive || stream.flags.tty) throw new Error('exec --sync takes no -i or -t: it has no input and no terminal');
        return await execSyncCommand(cri, out, (t) => void process.stderr.write(t), stream.target, stream.command, timeoutS);
      case 'attach':
        if (stream.target === undefined || stream.command.length > 0) throw new Error('attach needs exactly one container id');
        if (stream.flags.sync) throw new Error('attach takes -i and -t only');
        return await attachCommand(cri, stream.target, stream.flags);
      case 'port-forward': {
        if (positionals.length < 3) throw new Error('port-forward needs a pod id and at least one [LOCAL:]REMOTE port');
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        process.once('SIGTERM', () => abort.abort());
        await portForwardCommand(cri, out, (t) => void process.stderr.write(t), positionals[1]!, positionals.slice(2), abort.signal);
        return 0;
      }
      case 'stats':
        await statsCommand(cri, out, values.output === 'json' ? 'json' : 'text');
        return 0;
      case 'events': {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        process.once('SIGTERM', () => abort.abort());
        await eventsCommand(cri, out, abort.signal);
        return 0;
      }
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
