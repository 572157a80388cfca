import type { CriClient } from '@berth/client';

export type Output = (text: string) => void;

/** `berthctl version`: the same fields and layout as `crictl version`. */
export async function versionCommand(cri: CriClient, out: Output, format: 'text' | 'json'): Promise<void> {
  const v = await cri.runtime.version({ version: '0.1.0' });
  if (format === 'json') {
    out(`${JSON.stringify(v, null, 2)}\n`);
    return;
  }
  out(`Version:  ${v.version}\nRuntimeName:  ${v.runtimeName}\nRuntimeVersion:  ${v.runtimeVersion}\nRuntimeApiVersion:  ${v.runtimeApiVersion}\n`);
}

/** `berthctl info`: the runtime's Status as JSON, with the verbose info documents decoded. */
export async function infoCommand(cri: CriClient, out: Output): Promise<void> {
  const s = await cri.runtime.status({ verbose: true });
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.info)) {
    try {
      info[k] = JSON.parse(v) as unknown;
    } catch {
      info[k] = v;
    }
  }
  const doc = { status: s.status, runtimeHandlers: s.runtimeHandlers, features: s.features, ...info };
  out(`${JSON.stringify(doc, null, 2)}\n`);
}
