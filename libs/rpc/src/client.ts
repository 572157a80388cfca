import { Client, credentials, Metadata, status as GrpcStatus, type CallOptions, type ClientOptions, type ServiceError } from '@grpc/grpc-js';
import { context, propagation } from '@opentelemetry/api';
import { fromGrpcStatus } from '@berth/errors';
import { bulkChannelOptions } from './server-factory.js';
import { metadataSetter } from './trace-metadata.js';
import type { BidiStreamMethods, RequestOf, ResponseOf, ServerStreamMethods, ServiceDefinition, UnaryMethods } from './types.js';

/** One bidirectional call: send requests, read responses; failures reject with the status's BerthError. */
export interface BidiCall<Req, Res> {
  /** Sends one request; resolves when the transport can take more (back-pressure). */
  send(message: Req): Promise<void>;
  /** Half-closes: no more requests. */
  end(): void;
  /** The next response; rejects when the call fails, resolves undefined when the server ends the call. */
  next(): Promise<Res | undefined>;
  cancel(): void;
}

export interface CallOpts {
  /** Deadline of this call in milliseconds; default from the client's options. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type PromiseClient<S extends ServiceDefinition> = {
  [K in UnaryMethods<S>]: (request: RequestOf<S[K]>, options?: CallOpts) => Promise<ResponseOf<S[K]>>;
} & {
  [K in ServerStreamMethods<S>]: (request: RequestOf<S[K]>, options?: CallOpts) => AsyncIterable<ResponseOf<S[K]>>;
} & {
  [K in BidiStreamMethods<S>]: (options?: CallOpts) => BidiCall<RequestOf<S[K]>, ResponseOf<S[K]>>;
} & {
  /** Closes the channel; calls in flight fail with `canceled`. */
  close(): void;
  readonly grpc: Client;
};

/**
 * Berth's peers are local processes that restart in well under a second:
 * reconnect quickly instead of grpc-js's default back-off of up to two minutes.
 */
const localChannelOptions = {
  // As the kubelet's CRI client and Berth's servers: messages up to 16 MiB.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

export interface ClientOpts {
  /** Default deadline for every call; 30 s unless given. */
  timeoutMs?: number;
  /**
   * Whether a call waits (until its deadline) for a server that is not
   * reachable yet. True for Berth's internal clients, whose servers restart
   * under supervision; an interactive client wants an immediate answer.
   */
  waitForReady?: boolean;
  channelOptions?: Partial<ClientOptions>;
}

function callMetadata(waitForReady: boolean): Metadata {
  const metadata = new Metadata();
  // A call made while the server restarts waits for it (until its deadline) rather than failing at once.
  if (waitForReady) metadata.setOptions({ waitForReady: true });
  propagation.inject(context.active(), metadata, metadataSetter);
  return metadata;
}

/**
 * A promise-based client for a generated service definition, over an
 * insecure channel (Berth's internal sockets are unix sockets). Failed calls
 * reject with the BerthError of their status's category, so callers check
 * categories, never gRPC codes. Trace context travels in the metadata.
 */
export function createClient<S extends ServiceDefinition>(definition: S, address: string, options: ClientOpts = {}): PromiseClient<S> {
  const client = new Client(address, credentials.createInsecure(), { ...localChannelOptions, ...bulkChannelOptions, ...options.channelOptions });
  const defaultTimeout = options.timeoutMs ?? 30_000;
  const waitForReady = options.waitForReady ?? true;
  const result: Record<string, unknown> = {
    close: () => client.close(),
    grpc: client,
  };
  const callOptions = (opts?: CallOpts): CallOptions => ({ deadline: Date.now() + (opts?.timeoutMs ?? defaultTimeout) });
  for (const [name, method] of Object.entries(definition)) {
    const short = method.path.slice(method.path.lastIndexOf('/') + 1);
    if (!method.requestStream && !method.responseStream) {
      result[name] = (request: unknown, opts?: CallOpts) =>
        new Promise((resolve, reject) => {
          const call = client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, callMetadata(waitForReady), callOptions(opts), (err: ServiceError | null, value?: unknown) => {
            if (err) reject(fromGrpcStatus({ code: err.code ?? GrpcStatus.UNKNOWN, details: err.details }, short));
            else resolve(value);
          });
          opts?.signal?.addEventListener('abort', () => call.cancel(), { once: true });
        });
    } else if (!method.requestStream && method.responseStream) {
      result[name] = (request: unknown, opts?: CallOpts) => {
        const stream = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, callMetadata(waitForReady), opts?.timeoutMs === undefined ? {} : callOptions(opts));
        opts?.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
        return (async function* () {
          try {
            for await (const message of stream) yield message as unknown;
          } catch (err) {
            const e = err as ServiceError;
            throw fromGrpcStatus({ code: e.code ?? GrpcStatus.UNKNOWN, details: e.details ?? e.message }, short);
          }
        })();
      };
    } else if (method.requestStream && method.responseStream) {
      result[name] = (opts?: CallOpts) => {
        const stream = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, callMetadata(waitForReady), opts?.timeoutMs === undefined ? {} : callOptions(opts));
        opts?.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
        let failure: Error | undefined;
        let ended = false;
        const queue: unknown[] = [];
        const waiters: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
        const settle = (): void => {
          while (waiters.length > 0 && (queue.length > 0 || failure !== undefined || ended)) {
            const w = waiters.shift()!;
            if (queue.length > 0) w.resolve(queue.shift());
            else if (failure !== undefined) w.reject(failure);
            else w.resolve(undefined);
          }
        };
        stream.on('data', (m: unknown) => {
          queue.push(m);
          settle();
        });
        stream.on('error', (err: ServiceError) => {
          failure = fromGrpcStatus({ code: err.code ?? GrpcStatus.UNKNOWN, details: err.details ?? err.message }, short);
          settle();
        });
        stream.on('end', () => {
          ended = true;
          settle();
        });
        return {
          send: (message: unknown) =>
            new Promise<void>((resolve, reject) => {
              if (failure !== undefined) return reject(failure);
              if (stream.write(message)) resolve();
              else stream.once('drain', () => resolve());
            }),
          end: () => stream.end(),
          next: () =>
            new Promise((resolve, reject) => {
              waiters.push({ resolve, reject });
              settle();
            }),
          cancel: () => stream.cancel(),
        };
      };
    }
  }
  return result as PromiseClient<S>;
}
