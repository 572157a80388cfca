import { SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * Runs `fn` as a span named `name`, a child of the active span (the RPC
 * being served): a call's trace then shows which of its steps took the
 * time. A failure marks the span and is rethrown.
 */
export function inSpan<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return trace.getTracer('berth').startActiveSpan(name, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}
