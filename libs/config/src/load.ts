import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { InvalidArgumentError } from '@berth/errors';
import { configSchema, type BerthConfig } from './schema.js';

export const defaultConfigPath = '/etc/berth/config.toml';
const envPrefix = 'BERTH_';

export interface LoadConfigOptions {
  /** Path of the TOML file; a missing file is fine only when it is the default path. */
  path?: string;
  /** Environment to read overrides from (BERTH_STATE_DIR, BERTH_NATS__URL, ...). */
  env?: NodeJS.ProcessEnv;
}

/** `STATE_DIR` → `stateDir`. */
function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** An environment value: JSON when it parses as JSON (numbers, booleans, arrays), a string otherwise. */
function envValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/**
 * Applies `BERTH_A__B_C=v` as `a.bC = v`. Returns, for each key path set, the
 * variable it came from, so that a validation error can name it.
 */
function applyEnv(target: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const sources = new Map<string, string>();
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(envPrefix) || raw === undefined || name === 'BERTH_CONFIG') continue;
    const path = name.slice(envPrefix.length).split('__').map(camel);
    let node = target;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1];
    if (leaf === undefined || leaf === '') continue;
    node[leaf] = envValue(raw);
    sources.set(path.join('.'), name);
  }
  return sources;
}

/**
 * Loads, merges and validates the configuration. Throws InvalidArgumentError
 * naming the bad key (and the variable or file it came from).
 */
export function loadConfig(options: LoadConfigOptions = {}): BerthConfig {
  const env = options.env ?? process.env;
  const explicit = options.path ?? env['BERTH_CONFIG'];
  const path = explicit ?? defaultConfigPath;
  let raw: Record<string, unknown> = {};
  try {
    raw = parseToml(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!(code === 'ENOENT' && explicit === undefined)) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InvalidArgumentError(`config ${path}: ${why}`, { cause: err });
    }
  }
  const sources = applyEnv(raw, env);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [issue.path.join('.')];
      return keys
        .map((key) => {
          const from = sources.get(key);
          const what = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
          return `${key || '(root)'}: ${what}${from ? ` (from ${from})` : ` (in ${path})`}`;
        })
        .join('; ');
    });
    throw new InvalidArgumentError(`invalid config: ${problems.join('; ')}`);
  }
  const config = result.data;
  if (config.database.url === '') config.database.url = `file:${join(config.stateDir, 'berth.db')}`;
  return config;
}
