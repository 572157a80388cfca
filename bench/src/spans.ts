// Where Berth's time goes, from its own traces: the Berth stack under
// benchmark exports spans (OTLP over HTTP, JSON) to this collector, and each
// CRI call of interest is broken down into the steps its trace records
// (the executor's RPC, pod and container steps, the image service's pull
// steps), as medians over the runs of one workload.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { summarize } from './stats.js';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  service: string;
  startMs: number;
  ms: number;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value?: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; startTimeUnixNano: string; endTimeUnixNano: string }[] }[];
  }[];
}

export interface Breakdown {
  call: string;
  runs: number;
  medianMs: number;
  steps: { name: string; medianMs: number }[];
}

export async function startSpanCollector(): Promise<{ endpoint: string; spans: Span[]; stop(): Promise<void> }> {
  const spans: Span[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as OtlpJson;
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue?.replace(/^berth-/, '') ?? '?';
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const start = Number(BigInt(s.startTimeUnixNano) / 1000n) / 1000;
              spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, service, startMs: start, ms: Number(BigInt(s.endTimeUnixNano) / 1000n) / 1000 - start });
            }
          }
        }
      } catch {
        // not a JSON export: ignored
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}/v1/traces`, spans, stop: () => new Promise((r) => server.close(() => r())) };
}

/**
 * The CRI frontend's `call` spans that began in [fromMs, toMs], each with the
 * spans under it (same trace) grouped by service and name: median over runs
 * of each step's total time in its run.
 */
export function breakdown(spans: Span[], call: string, fromMs: number, toMs: number, title = call): Breakdown | undefined {
  const roots = spans.filter((s) => s.service === 'cri' && s.name === call && s.parentSpanId === '' && s.startMs >= fromMs && s.startMs <= toMs);
  if (roots.length === 0) return undefined;
  const perStep = new Map<string, number[]>();
  for (const root of roots) {
    const inTrace = spans.filter((s) => s.traceId === root.traceId && s !== root);
    const totals = new Map<string, number>();
    for (const s of inTrace) totals.set(`${s.service}: ${s.name}`, (totals.get(`${s.service}: ${s.name}`) ?? 0) + s.ms);
    for (const [name, ms] of totals) perStep.set(name, [...(perStep.get(name) ?? []), ms]);
  }
  const steps = [...perStep.entries()].map(([name, v]) => ({ name, medianMs: summarize(v).median })).sort((a, b) => b.medianMs - a.medianMs);
  return { call: title, runs: roots.length, medianMs: summarize(roots.map((r) => r.ms)).median, steps };
}
