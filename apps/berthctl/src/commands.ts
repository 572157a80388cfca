import { imageSpec, type CriClient } from '@berth/client';
import { toJson } from '@berth/proto';
import type { ProgressWatcher } from './progress.js';

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

/** `berthctl pull IMAGE [--creds user:pass]`: prints the image id, as `crictl pull` does. */
export async function pullCommand(cri: CriClient, out: Output, image: string, creds?: string, progress?: ProgressWatcher): Promise<void> {
  let auth;
  if (creds !== undefined) {
    const colon = creds.indexOf(':');
    auth = { username: colon < 0 ? creds : creds.slice(0, colon), password: colon < 0 ? '' : creds.slice(colon + 1), auth: '', serverAddress: '', identityToken: '', registryToken: '' };
  }
  const r = await cri.image.pullImage({ image: imageSpec(image), auth, sandboxConfig: undefined }).finally(() => progress?.stop());
  out(`Image is up to date for ${r.imageRef}\n`);
}

function humanSize(bytes: bigint): string {
  const n = Number(bytes);
  for (const [unit, size] of [['GB', 1e9], ['MB', 1e6], ['kB', 1e3]] as const) if (n >= size) return `${(n / size).toFixed(3)}${unit}`;
  return `${n}B`;
}

/** `berthctl images`: a table like `crictl images`. */
export async function imagesCommand(cri: CriClient, out: Output, format: 'text' | 'json'): Promise<void> {
  const { images } = await cri.image.listImages({ filter: undefined });
  if (format === 'json') {
    out(`${toJson({ images }, 2)}\n`);
    return;
  }
  const rows = [['IMAGE', 'TAG', 'IMAGE ID', 'SIZE']];
  for (const i of images) {
    const id = i.id.replace(/^sha256:/, '').slice(0, 13);
    const tags = i.repoTags.length > 0 ? i.repoTags : i.repoDigests.map((d) => `${d.split('@')[0]}:<none>`);
    for (const t of tags) {
      const colon = t.lastIndexOf(':');
      rows.push([t.slice(0, colon), t.slice(colon + 1), id, humanSize(i.size)]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  out(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('   ').trimEnd()).join('\n') + '\n');
}

/** `berthctl inspecti IMAGE`: the image status as JSON. */
export async function inspectImageCommand(cri: CriClient, out: Output, image: string): Promise<number> {
  const r = await cri.image.imageStatus({ image: imageSpec(image), verbose: true });
  if (r.image === undefined) {
    out(`no such image: ${image}\n`);
    return 1;
  }
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.info)) info[k] = JSON.parse(v) as unknown;
  out(`${toJson({ status: r.image, info }, 2)}\n`);
  return 0;
}

/** `berthctl rmi IMAGE...` */
export async function removeImagesCommand(cri: CriClient, out: Output, images: string[]): Promise<void> {
  for (const image of images) {
    await cri.image.removeImage({ image: imageSpec(image) });
    out(`Deleted: ${image}\n`);
  }
}

/** `berthctl imagefsinfo`: the image filesystem's usage as JSON. */
export async function imageFsInfoCommand(cri: CriClient, out: Output): Promise<void> {
  const r = await cri.image.imageFsInfo({});
  out(`${toJson(r, 2)}\n`);
}
