import { metrics, trace, type Meter, type Tracer } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export interface TelemetryOptions {
  service: string;
  version: string;
  /** `none` keeps spans in-process (context still propagates); `otlp` exports them over HTTP. */
  tracesExporter: 'none' | 'otlp';
  otlpEndpoint?: string;
}

export interface Telemetry {
  tracer: Tracer;
  meter: Meter;
  /** Serves the Prometheus text format; mounted at /metrics by the health plugin. */
  prometheus: PrometheusExporter;
  shutdown(): Promise<void>;
}

/**
 * Wires the OpenTelemetry SDK for one service process: a tracer provider
 * (W3C trace context; exported only when configured, so a node without a
 * collector never waits on one) and a meter provider read by Prometheus.
 * Call once, from the composition root. Libraries use @opentelemetry/api only.
 * The OTLP exporter is loaded only when configured (it costs several MiB of
 * memory in every service).
 */
export async function initTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: `berth-${options.service}`,
    [ATTR_SERVICE_VERSION]: options.version,
  });
  const spanProcessors: SpanProcessor[] = [];
  if (options.tracesExporter === 'otlp') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter(options.otlpEndpoint === undefined ? {} : { url: options.otlpEndpoint })));
  }
  const tracerProvider = new NodeTracerProvider({ resource, spanProcessors });
  tracerProvider.register();
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ resource, readers: [prometheus] });
  metrics.setGlobalMeterProvider(meterProvider);
  return {
    tracer: trace.getTracer(`berth-${options.service}`, options.version),
    meter: meterProvider.getMeter(`berth-${options.service}`, options.version),
    prometheus,
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}
