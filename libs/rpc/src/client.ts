import { Client, credentials, Metadata, status as GrpcStatus, type CallOptions, type ClientOptions, type ServiceError } from '@grpc/grpc-js';
import { context, propagation } from '@opentelemetry/api';
import { fromGrpcStatus } from '@berth/errors';
import { metadataSetter } from './trace-metadata.js';
import type { RequestOf, ResponseOf, ServerStreamMethods, ServiceDefinition, UnaryMethods } from './types.js';

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
  /** Closes the channel; calls in flight fail with `canceled`. */
  close(): void;
  readonly grpc: Client;
};

export interface ClientOpts {
  /** Default deadline for every call; 30 s unless given. */
  timeoutMs?: number;
  channelOptions?: Partial<ClientOptions>;
}

function callMetadata(): Metadata {
  const metadata = new Metadata();
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
  const client = new Client(address, credentials.createInsecure(), options.channelOptions ?? {});
  const defaultTimeout = options.timeoutMs ?? 30_000;
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
          const call = client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, callMetadata(), callOptions(opts), (err: ServiceError | null, value?: unknown) => {
            if (err) reject(fromGrpcStatus({ code: err.code ?? GrpcStatus.UNKNOWN, details: err.details }, short));
            else resolve(value);
          });
          opts?.signal?.addEventListener('abort', () => call.cancel(), { once: true });
        });
    } else if (!method.requestStream && method.responseStream) {
      result[name] = (request: unknown, opts?: CallOpts) => {
        const stream = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, callMetadata(), opts?.timeoutMs === undefined ? {} : callOptions(opts));
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
    }
  }
  return result as PromiseClient<S>;
}
