// Runs a CNI network configuration (the spec's plugin chaining, written for
// Berth): ADD calls each plugin in order with the previous result, DEL calls
// them in reverse with the result ADD recorded, as libcni does.
import { dirname } from 'node:path';
import { DeadlineExceededError, InternalError } from '@berth/errors';
import { describeExit, runProcess } from '@berth/native';
import type { CniNetworkConfig } from './cni-config.js';

export interface CniPodArgs {
  containerId: string;
  netns: string;
  ifName: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  /** For the portmap plugin's `portMappings` capability. */
  portMappings: { hostPort: number; containerPort: number; protocol: string; hostIP: string }[];
}

export interface CniResult {
  ips: string[];
  /** The raw result of the last plugin, kept for DEL. */
  raw: Record<string, unknown>;
}

/** How long one plugin may take (the kubelet's own deadline for RunPodSandbox is 4 minutes). */
const pluginTimeoutMs = 120_000;

async function runPlugin(binary: string, command: 'ADD' | 'DEL' | 'CHECK', args: CniPodArgs, binDirs: string[], stdin: string): Promise<string> {
  const env = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: args.containerId,
    CNI_NETNS: args.netns,
    CNI_IFNAME: args.ifName,
    CNI_PATH: [...new Set([dirname(binary), ...binDirs])].join(':'),
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${args.podNamespace};K8S_POD_NAME=${args.podName};K8S_POD_INFRA_CONTAINER_ID=${args.containerId};K8S_POD_UID=${args.podUid}`,
  };
  // A plugin that hangs fails the call (and its undo runs) instead of holding the pod, and its retries, for ever.
  const r = await runProcess(binary, [], { env, input: stdin, timeoutMs: pluginTimeoutMs });
  const out = r.stdout.toString();
  if (r.code === 0) return out;
  if (r.timedOut) throw new DeadlineExceededError(`CNI ${command} with ${binary} did not finish within ${pluginTimeoutMs / 1000} s`);
  let message = r.stderr.toString().trim() || out.trim() || describeExit(r);
  try {
    const parsed = JSON.parse(out) as { msg?: string; details?: string };
    message = [parsed.msg, parsed.details].filter(Boolean).join(': ');
  } catch {
    // not a CNI error object
  }
  throw new InternalError(`CNI ${command} with ${binary} failed: ${message}`);
}

function pluginConf(network: CniNetworkConfig, conf: Record<string, unknown>, args: CniPodArgs, prevResult: Record<string, unknown> | undefined): string {
  const out: Record<string, unknown> = { ...conf, name: network.name, cniVersion: network.cniVersion };
  const caps = conf['capabilities'] as Record<string, unknown> | undefined;
  if (caps?.['portMappings'] === true && args.portMappings.length > 0) out['runtimeConfig'] = { portMappings: args.portMappings };
  if (prevResult !== undefined) out['prevResult'] = prevResult;
  return JSON.stringify(out);
}

function ipsOf(result: Record<string, unknown>): string[] {
  const ips = (result['ips'] as { address?: string }[] | undefined) ?? [];
  return ips.map((i) => (i.address ?? '').split('/')[0] ?? '').filter((a) => a !== '');
}

/**
 * Whether a chained reference plugin would do nothing a process is needed
 * for, so that Berth leaves it out: `loopback` after another plugin only
 * brings lo up (done when the namespace is pinned) and passes the result on,
 * and on DEL takes lo down in a namespace about to go; `portmap` without
 * port mappings passes the result on and deletes nothing. Each is a Go
 * process of 15-25 ms here. Run first in a chain, either plugin still runs
 * (its result or its error is its own).
 */
function elided(plugin: CniNetworkConfig['plugins'][number], index: number, args: CniPodArgs): boolean {
  if (index === 0) return false;
  const type = plugin.conf['type'];
  return type === 'loopback' || (type === 'portmap' && args.portMappings.length === 0);
}

export async function cniAdd(network: CniNetworkConfig, args: CniPodArgs, binDirs: string[]): Promise<CniResult> {
  let prev: Record<string, unknown> | undefined;
  for (const [index, plugin] of network.plugins.entries()) {
    if (elided(plugin, index, args)) continue;
    const out = await runPlugin(plugin.binary, 'ADD', args, binDirs, pluginConf(network, plugin.conf, args, prev));
    try {
      prev = JSON.parse(out) as Record<string, unknown>;
    } catch {
      throw new InternalError(`CNI plugin ${plugin.binary} returned a result that is not JSON`);
    }
  }
  const raw = prev ?? {};
  return { ips: ipsOf(raw), raw };
}

/** DEL in reverse order; every plugin is called even when one fails, and the first failure is reported. */
export async function cniDel(network: CniNetworkConfig, args: CniPodArgs, binDirs: string[], prevResult: Record<string, unknown> | undefined): Promise<void> {
  let first: Error | undefined;
  for (const [index, plugin] of [...network.plugins.entries()].reverse()) {
    if (elided(plugin, index, args)) continue;
    try {
      await runPlugin(plugin.binary, 'DEL', args, binDirs, pluginConf(network, plugin.conf, args, prevResult));
    } catch (err) {
      first ??= err as Error;
    }
  }
  if (first !== undefined) throw first;
}
