import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

export interface CheckResult {
  ok: boolean;
  message?: string;
}

/** Named readiness checks; each must settle quickly (it is polled by probes). */
export type ReadinessChecks = () => Promise<Record<string, CheckResult>>;

export interface HealthPluginOptions {
  readiness: ReadinessChecks;
  prometheus?: PrometheusExporter;
}

/**
 * `/healthz` (the process answers), `/readyz` (every check passes: 200, else
 * 503, with the checks as JSON) and `/metrics` (Prometheus text format).
 */
export const healthPlugin: FastifyPluginAsync<HealthPluginOptions> = async (app, options) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    let checks: Record<string, CheckResult>;
    try {
      checks = await options.readiness();
    } catch (err) {
      checks = { readiness: { ok: false, message: err instanceof Error ? err.message : String(err) } };
    }
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
  const prometheus = options.prometheus;
  if (prometheus !== undefined) {
    app.get('/metrics', (request, reply) => {
      reply.hijack();
      prometheus.getMetricsRequestHandler(request.raw, reply.raw);
    });
  }
};

export interface HealthServerOptions extends HealthPluginOptions {
  host: string;
  port: number;
}

/** Starts a small fastify server with only the health plugin; resolves once it listens. */
export async function startHealthServer(options: HealthServerOptions): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify({ logger: false });
  const pluginOptions: HealthPluginOptions = options.prometheus === undefined ? { readiness: options.readiness } : { readiness: options.readiness, prometheus: options.prometheus };
  await app.register(healthPlugin, pluginOptions);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return { app, port };
}
