import { access, constants, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CniStatus {
  ready: boolean;
  reason: string;
  message: string;
  configFile: string;
  networkName: string;
}

interface PluginConf {
  type?: unknown;
}

/** A usable network configuration: what CNI ADD and DEL run. */
export interface CniNetworkConfig {
  name: string;
  cniVersion: string;
  /** Each plugin's configuration as written, and the executable that runs it. */
  plugins: { conf: Record<string, unknown>; binary: string }[];
}

const notReady = (message: string): CniStatus => ({ ready: false, reason: 'NetworkPluginNotReady', message, configFile: '', networkName: '' });

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks pod networking as the kubelet expects a runtime to: the first
 * network configuration in `confDir` (by file name, `.conflist`, `.conf` or
 * `.json`, as libcni orders them) must parse, name a network and CNI version,
 * and every plugin it lists must be an executable in one of `binDirs`.
 * Never throws: problems are reported in the status.
 */
export async function checkCniConfig(confDir: string, binDirs: string[]): Promise<CniStatus> {
  return (await loadCniConfig(confDir, binDirs)).status;
}

/** The same check, with the configuration when it is usable. */
export async function loadCniConfig(confDir: string, binDirs: string[]): Promise<{ status: CniStatus; network?: CniNetworkConfig }> {
  const fail = (s: CniStatus) => ({ status: s });
  let files: string[];
  try {
    files = (await readdir(confDir)).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch (err) {
    return fail(notReady(`cannot read CNI config dir ${confDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`));
  }
  const first = files[0];
  if (first === undefined) return fail(notReady(`no network config found in ${confDir}`));
  const configFile = join(confDir, first);
  let conf: { cniVersion?: unknown; name?: unknown; plugins?: unknown; type?: unknown };
  try {
    conf = JSON.parse(await readFile(configFile, 'utf8')) as typeof conf;
  } catch (err) {
    return fail({ ...notReady(`${configFile} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`), configFile });
  }
  if (typeof conf !== 'object' || conf === null) return fail({ ...notReady(`${configFile} is not a JSON object`), configFile });
  if (typeof conf.name !== 'string' || conf.name === '') return fail({ ...notReady(`${configFile} names no network`), configFile });
  if (typeof conf.cniVersion !== 'string') return fail({ ...notReady(`${configFile} has no cniVersion`), configFile });
  const plugins: PluginConf[] = first.endsWith('.conflist') ? (Array.isArray(conf.plugins) ? (conf.plugins as PluginConf[]) : []) : [conf];
  if (plugins.length === 0) return fail({ ...notReady(`${configFile} lists no plugins`), configFile });
  const resolved: CniNetworkConfig['plugins'] = [];
  for (const plugin of plugins) {
    if (typeof plugin?.type !== 'string' || !/^[A-Za-z0-9._-]+$/.test(plugin.type)) return fail({ ...notReady(`${configFile}: a plugin has no valid type`), configFile });
    const candidates = binDirs.map((d) => join(d, plugin.type as string));
    let found: string | undefined;
    for (const c of candidates) if (found === undefined && (await isExecutable(c))) found = c;
    resolved.push({ conf: plugin as Record<string, unknown>, binary: found ?? '' });
    if (found === undefined) return fail({ ...notReady(`CNI plugin ${plugin.type} not found in ${binDirs.join(', ')}`), configFile, networkName: conf.name });
  }
  return { status: { ready: true, reason: '', message: '', configFile, networkName: conf.name }, network: { name: conf.name, cniVersion: conf.cniVersion, plugins: resolved } };
}
