// berthctl's pod and container commands, shaped like crictl's: configs are
// JSON files in the CRI's form (snake_case or camelCase field names).
import { createReadStream, readFileSync, statSync, watch } from 'node:fs';
import type { CriClient } from '@berth/client';
import { criV1, toJson } from '@berth/proto';
import type { Output } from './commands.js';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
}

const podStates = ['SANDBOX_READY', 'SANDBOX_NOTREADY'];
const containerStates = ['CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_UNKNOWN'];
const eventTypes = ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT'];
const ago = (nanos: bigint): string => {
  const s = Math.max(0, Math.round((Date.now() - Number(nanos / 1_000_000n)) / 1000));
  return s < 60 ? `${s} seconds ago` : s < 3600 ? `${Math.round(s / 60)} minutes ago` : `${Math.round(s / 3600)} hours ago`;
};

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => c.padEnd(widths[i]! + 3)).join('').trimEnd()).join('\n')}\n`;
}

export async function runPodCommand(cri: CriClient, out: Output, configPath: string, handler: string): Promise<void> {
  const config = criV1.PodSandboxConfig.fromJSON(readJson(configPath));
  const r = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  out(`${r.podSandboxId}\n`);
}

export async function podsCommand(cri: CriClient, out: Output, format: 'text' | 'json'): Promise<void> {
  const { items } = await cri.runtime.listPodSandbox({ filter: undefined });
  if (format === 'json') return out(`${toJson({ items }, 2)}\n`);
  const rows = [['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'RUNTIME']];
  for (const p of items) rows.push([p.id.slice(0, 13), ago(p.createdAt), podStates[p.state]?.replace('SANDBOX_', '') ?? String(p.state), p.metadata?.name ?? '', p.metadata?.namespace ?? '', String(p.metadata?.attempt ?? 0), p.runtimeHandler || '(default)']);
  out(table(rows));
}

export async function createCommand(cri: CriClient, out: Output, podId: string, containerConfigPath: string, podConfigPath: string): Promise<void> {
  const config = criV1.ContainerConfig.fromJSON(readJson(containerConfigPath));
  const sandboxConfig = criV1.PodSandboxConfig.fromJSON(readJson(podConfigPath));
  const r = await cri.runtime.createContainer({ podSandboxId: podId, config, sandboxConfig });
  out(`${r.containerId}\n`);
}

export async function psCommand(cri: CriClient, out: Output, all: boolean, format: 'text' | 'json'): Promise<void> {
  const filter = all ? undefined : { id: '', state: { state: criV1.ContainerState.CONTAINER_RUNNING }, podSandboxId: '', labelSelector: {} };
  const { containers } = await cri.runtime.listContainers({ filter });
  if (format === 'json') return out(`${toJson({ containers }, 2)}\n`);
  const rows = [['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID']];
  for (const c of containers) rows.push([c.id.slice(0, 13), c.image?.image ?? c.imageRef, ago(c.createdAt), containerStates[c.state]?.replace('CONTAINER_', '') ?? String(c.state), c.metadata?.name ?? '', String(c.metadata?.attempt ?? 0), c.podSandboxId.slice(0, 13)]);
  out(table(rows));
}

/** `berthctl inspect ID`: a container's status, or a pod's when the id is a pod's. */
export async function inspectCommand(cri: CriClient, out: Output, id: string): Promise<void> {
  try {
    const s = await cri.runtime.containerStatus({ containerId: id, verbose: true });
    return out(`${toJson({ status: s.status, info: Object.fromEntries(Object.entries(s.info).map(([k, v]) => [k, JSON.parse(v) as unknown])) }, 2)}\n`);
  } catch (err) {
    if (!/not found/.test((err as Error).message)) throw err;
  }
  const p = await cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: true });
  out(`${toJson({ status: p.status, info: Object.fromEntries(Object.entries(p.info).map(([k, v]) => [k, JSON.parse(v) as unknown])) }, 2)}\n`);
}

/**
 * `berthctl logs [-f] ID`: the container's output from its CRI-format log
 * (timestamp, stream, P/F tag, text); partial lines are joined. With -f it
 * follows the file until the container exits or the command is interrupted.
 */
export async function logsCommand(cri: CriClient, out: Output, err: Output, id: string, follow: boolean): Promise<void> {
  const status = (await cri.runtime.containerStatus({ containerId: id, verbose: false })).status;
  if (status === undefined || status.logPath === '') throw new Error(`container ${id} has no log`);
  const path = status.logPath;
  let offset = 0;
  let rest = '';
  const emit = (chunk: string): void => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\S+ (stdout|stderr) ([PF]) (.*)$/.exec(line);
      if (m === null) continue;
      (m[1] === 'stderr' ? err : out)(m[2] === 'F' ? `${m[3]}\n` : (m[3] ?? ''));
    }
  };
  const drain = async (): Promise<void> => {
    const size = statSync(path).size;
    if (size < offset) offset = 0; // rotated
    if (size === offset) return;
    for await (const c of createReadStream(path, { start: offset, end: size - 1, encoding: 'utf8' })) emit(c as string);
    offset = size;
  };
  await drain();
  if (!follow) return;
  await new Promise<void>((resolve) => {
    let busy = false;
    const tick = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      await drain().catch(() => undefined);
      const s = (await cri.runtime.containerStatus({ containerId: id, verbose: false }).catch(() => undefined))?.status;
      busy = false;
      if (s === undefined || s.state === criV1.ContainerState.CONTAINER_EXITED) {
        await drain().catch(() => undefined);
        watcher.close();
        clearInterval(timer);
        resolve();
      }
    };
    const watcher = watch(path, () => void tick());
    const timer = setInterval(() => void tick(), 500);
  });
}

export async function execSyncCommand(cri: CriClient, out: Output, err: Output, id: string, cmd: string[], timeoutS: number): Promise<number> {
  const r = await cri.runtime.execSync({ containerId: id, cmd, timeout: BigInt(Math.ceil(timeoutS)) });
  out(Buffer.from(r.stdout).toString());
  err(Buffer.from(r.stderr).toString());
  return r.exitCode;
}

const fmtBytes = (v: bigint | undefined): string => (v === undefined ? '-' : Number(v) >= 1e6 ? `${(Number(v) / 1e6).toFixed(1)}MB` : `${(Number(v) / 1e3).toFixed(1)}kB`);

export async function statsCommand(cri: CriClient, out: Output, format: 'text' | 'json'): Promise<void> {
  const { stats } = await cri.runtime.listContainerStats({ filter: undefined });
  if (format === 'json') return out(`${toJson({ stats }, 2)}\n`);
  const rows = [['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES']];
  for (const s of stats) {
    const cores = s.cpu?.usageNanoCores?.value;
    rows.push([s.attributes?.id.slice(0, 13) ?? '', s.attributes?.metadata?.name ?? '', cores === undefined ? '-' : (Number(cores) / 1e7).toFixed(2), fmtBytes(s.memory?.workingSetBytes?.value), fmtBytes(s.writableLayer?.usedBytes?.value), String(s.writableLayer?.inodesUsed?.value ?? '-')]);
  }
  out(table(rows));
}

/** `berthctl events`: one JSON line per container or pod lifecycle event, until interrupted. */
export async function eventsCommand(cri: CriClient, out: Output, signal: AbortSignal): Promise<void> {
  try {
    for await (const e of cri.runtime.getContainerEvents({}, { signal, timeoutMs: 365 * 24 * 3600 * 1000 })) {
      out(`${JSON.stringify({ containerId: e.containerId, type: eventTypes[e.containerEventType] ?? String(e.containerEventType), createdAt: String(e.createdAt), podSandboxId: e.podSandboxStatus?.id ?? '', name: e.containersStatuses[0]?.metadata?.name ?? e.podSandboxStatus?.metadata?.name ?? '' })}\n`);
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}
