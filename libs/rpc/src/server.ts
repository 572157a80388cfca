import { once } from 'node:events';
import {
  Metadata,
  type ServerDuplexStream,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { context, metrics, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { BerthError, GrpcCode, InvalidArgumentError, toGrpcStatus, UnimplementedError } from '@berth/errors';
import type { Logger } from '@berth/observability';
import { metadataGetter } from './trace-metadata.js';
import type { BidiStreamMethods, RequestOf, ResponseOf, ServerStreamMethods, ServiceDefinition, UnaryMethods } from './types.js';

/** What a handler knows about the call besides its request. */
export interface CallContext {
  /** The full method path, e.g. `/runtime.v1.RuntimeService/Version`. */
  method: string;
  metadata: Metadata;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
/**
 * A server-streaming handler writes with `send`, which waits while the client
 * is not reading (back-pressure), and resolves when the stream is done.
 */
export type ServerStreamHandler<Req, Res> = (request: Req, send: (message: Res) => Promise<void>, ctx: CallContext) => Promise<void>;

/**
 * A bidirectional handler reads requests (an undecodable one throws
 * InvalidArgumentError from the iterator) and writes with `send`, which waits
 * while the client is not reading (back-pressure).
 */
export type BidiStreamHandler<Req, Res> = (requests: AsyncIterable<Req>, send: (message: Res) => Promise<void>, ctx: CallContext) => Promise<void>;

export type Handlers<S extends ServiceDefinition> = {
  [K in UnaryMethods<S>]?: UnaryHandler<RequestOf<S[K]>, ResponseOf<S[K]>>;
} & {
  [K in ServerStreamMethods<S>]?: ServerStreamHandler<RequestOf<S[K]>, ResponseOf<S[K]>>;
} & {
  [K in BidiStreamMethods<S>]?: BidiStreamHandler<RequestOf<S[K]>, ResponseOf<S[K]>>;
};

export interface ServeOptions {
  logger: Logger;
  /** Name used for the tracer and metrics, e.g. `cri`. */
  service: string;
  /** Message of the UNIMPLEMENTED status for methods without a handler. */
  unimplementedMessage?: (method: string) => string;
}

/** Stands in for a request whose bytes did not decode; the handler wrapper answers INVALID_ARGUMENT. */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

/** Replies registered with {@link encodeOnce}: their bytes once encoded (null until then). */
const encodings = new WeakMap<object, Buffer | null>();

/**
 * Marks `reply`, an object its owner never changes again, as one that may be
 * sent many times: the server encodes it once and sends the same bytes each
 * time (a kept list of hundreds of containers, answered every second).
 * Returns `reply`.
 */
export function encodeOnce<T extends object>(reply: T): T {
  if (!encodings.has(reply)) encodings.set(reply, null);
  return reply;
}

/**
 * A copy of `definition` whose request decoder never throws: grpc-js would
 * answer INTERNAL for bytes that do not decode, but a malformed request is the
 * caller's fault, so the wrapper below answers INVALID_ARGUMENT instead. Its
 * encoder reuses the bytes of a reply marked with {@link encodeOnce}.
 */
function tolerantDefinition<S extends ServiceDefinition>(definition: S): S {
  const copy: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    copy[name] = {
      ...method,
      responseSerialize: (value: unknown) => {
        const known = typeof value === 'object' && value !== null ? encodings.get(value) : undefined;
        if (known) return known;
        const bytes = method.responseSerialize(value);
        if (known === null) encodings.set(value as object, bytes);
        return bytes;
      },
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return copy as S;
}

/**
 * The requests of a streaming call as an async iterable. Unlike iterating the
 * stream itself, leaving the loop early does not destroy the call, so the
 * handler's outcome (an error status, say) still reaches the client.
 */
function incoming(call: ServerDuplexStream<unknown, unknown>, short: string): AsyncIterable<unknown> {
  const queue: unknown[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    wake?.();
    wake = undefined;
  };
  call.on('data', (m: unknown) => {
    queue.push(m);
    if (queue.length > 16) call.pause();
    notify();
  });
  call.on('end', () => {
    ended = true;
    notify();
  });
  call.on('cancelled', () => {
    failure = new BerthError('canceled', `${short} cancelled by the client`);
    notify();
  });
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (queue.length > 0) {
          const message = queue.shift();
          if (queue.length <= 4) call.resume();
          if (message instanceof MalformedRequest) throw new InvalidArgumentError(`malformed ${short} request: ${message.reason}`);
          yield message;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

function methodName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * Builds a grpc-js service (definition + implementation) from typed handlers.
 * Every method of the definition gets an implementation: one without a handler
 * answers UNIMPLEMENTED. The wrapper is the single edge where errors become
 * gRPC statuses, where trace context is taken from metadata, and where each
 * call is logged and counted.
 */
export function buildService<S extends ServiceDefinition>(
  definition: S,
  handlers: Handlers<S>,
  options: ServeOptions,
): { definition: S; implementation: UntypedServiceImplementation } {
  const tracer = trace.getTracer(`berth-${options.service}-rpc`);
  const meter = metrics.getMeter(`berth-${options.service}-rpc`);
  const duration = meter.createHistogram('berth_rpc_server_duration_ms', {
    description: 'gRPC server call duration by method and status code',
    unit: 'ms',
  });
  const implementation: UntypedServiceImplementation = {};
  const table = handlers as Record<string, ((...args: never[]) => Promise<unknown>) | undefined>;

  for (const [name, method] of Object.entries(definition)) {
    const short = methodName(method.path);
    const handler = table[name];

    const run = async (
      request: unknown,
      metadata: Metadata,
      call: { on(event: 'cancelled', cb: () => void): unknown },
      invoke: (ctx: CallContext) => Promise<unknown>,
    ): Promise<{ ok: true; value: unknown } | { ok: false; code: number; details: string }> => {
      const started = performance.now();
      const parent = propagation.extract(context.active(), metadata, metadataGetter);
      return tracer.startActiveSpan(short, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.method': method.path } }, parent, async (span) => {
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort(new BerthError('canceled', `${short} cancelled by the client`)));
        let outcome: { ok: true; value: unknown } | { ok: false; code: number; details: string };
        try {
          if (request instanceof MalformedRequest) throw new InvalidArgumentError(`malformed ${short} request: ${request.reason}`);
          if (handler === undefined) {
            throw new UnimplementedError(options.unimplementedMessage?.(short) ?? `${short} is not implemented`);
          }
          outcome = { ok: true, value: await invoke({ method: method.path, metadata, signal: abort.signal }) };
        } catch (err) {
          const status = toGrpcStatus(err);
          outcome = { ok: false, ...status };
          if (status.code === GrpcCode.INTERNAL) options.logger.error({ err, method: short }, 'call failed with an internal error');
          else options.logger.debug({ method: short, code: status.code, details: status.details }, 'call failed');
          span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
        }
        const code = outcome.ok ? GrpcCode.OK : outcome.code;
        span.setAttribute('rpc.grpc.status_code', code);
        span.end();
        duration.record(performance.now() - started, { method: short, code });
        return outcome;
      });
    };

    if (!method.requestStream && !method.responseStream) {
      implementation[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        void run(call.request, call.metadata, call, (ctx) => (handler as UnaryHandler<unknown, unknown>)(call.request, ctx)).then((outcome) => {
          if (outcome.ok) callback(null, outcome.value);
          else callback({ code: outcome.code, details: outcome.details, metadata: new Metadata() });
        });
      };
    } else if (!method.requestStream && method.responseStream) {
      implementation[name] = (call: ServerWritableStream<unknown, unknown>) => {
        const send = async (message: unknown): Promise<void> => {
          if (call.cancelled || !call.writable) throw new BerthError('canceled', `${short}: the client went away`);
          if (!call.write(message)) await Promise.race([once(call, 'drain'), once(call, 'cancelled'), once(call, 'close')]);
        };
        void run(call.request, call.metadata, call, (ctx) => (handler as ServerStreamHandler<unknown, unknown>)(call.request, send, ctx)).then((outcome) => {
          if (outcome.ok) call.end();
          else call.emit('error', Object.assign(new Error(outcome.details), { code: outcome.code, details: outcome.details }));
        });
      };
    } else if (method.requestStream && method.responseStream) {
      implementation[name] = (call: ServerDuplexStream<unknown, unknown>) => {
        const requests = incoming(call, short);
        const send = async (message: unknown): Promise<void> => {
          if (call.cancelled || !call.writable) throw new BerthError('canceled', `${short}: the client went away`);
          if (!call.write(message)) await Promise.race([once(call, 'drain'), once(call, 'cancelled'), once(call, 'close')]);
        };
        void run(undefined, call.metadata, call, (ctx) => (handler as BidiStreamHandler<unknown, unknown>)(requests, send, ctx)).then((outcome) => {
          if (outcome.ok) call.end();
          else call.emit('error', Object.assign(new Error(outcome.details), { code: outcome.code, details: outcome.details }));
        });
      };
    } else {
      // Berth's APIs have no client-streaming-only methods; answer every such
      // call UNIMPLEMENTED rather than leave it hanging.
      implementation[name] = (_call: unknown, callback?: sendUnaryData<unknown>) => {
        const details = options.unimplementedMessage?.(short) ?? `${short} is not implemented`;
        if (callback) callback({ code: GrpcCode.UNIMPLEMENTED, details });
        else (_call as { emit(event: 'error', e: Error): void }).emit('error', Object.assign(new Error(details), { code: GrpcCode.UNIMPLEMENTED, details }));
      };
    }
  }
  return { definition: tolerantDefinition(definition), implementation };
}
