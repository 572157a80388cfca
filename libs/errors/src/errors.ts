/**
 * Berth's closed set of error categories. Every error that crosses a service
 * boundary is one of these; the transports map them to gRPC status codes once,
 * at the edge, and back again in clients (see grpc.ts).
 */
export const errorCategories = [
  'invalid-argument',
  'not-found',
  'already-exists',
  'failed-precondition',
  'resource-exhausted',
  'unavailable',
  'unimplemented',
  'deadline-exceeded',
  'aborted',
  'permission-denied',
  'canceled',
  'internal',
] as const;

export type ErrorCategory = (typeof errorCategories)[number];

export interface BerthErrorOptions {
  cause?: unknown;
}

/**
 * Base class of every categorised error. The message says, in lower case, what
 * was being attempted; the original error is kept as `cause`.
 */
export class BerthError extends Error {
  readonly category: ErrorCategory;

  constructor(category: ErrorCategory, message: string, options?: BerthErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.category = category;
    this.name = 'BerthError';
  }
}

function categoryClass(category: ErrorCategory, name: string): new (message: string, options?: BerthErrorOptions) => BerthError {
  const cls = class extends BerthError {
    constructor(message: string, options?: BerthErrorOptions) {
      super(category, message, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

export const InvalidArgumentError = categoryClass('invalid-argument', 'InvalidArgumentError');
export const NotFoundError = categoryClass('not-found', 'NotFoundError');
export const AlreadyExistsError = categoryClass('already-exists', 'AlreadyExistsError');
export const FailedPreconditionError = categoryClass('failed-precondition', 'FailedPreconditionError');
export const ResourceExhaustedError = categoryClass('resource-exhausted', 'ResourceExhaustedError');
export const UnavailableError = categoryClass('unavailable', 'UnavailableError');
export const UnimplementedError = categoryClass('unimplemented', 'UnimplementedError');
export const DeadlineExceededError = categoryClass('deadline-exceeded', 'DeadlineExceededError');
export const AbortedError = categoryClass('aborted', 'AbortedError');
export const PermissionDeniedError = categoryClass('permission-denied', 'PermissionDeniedError');
export const CanceledError = categoryClass('canceled', 'CanceledError');
export const InternalError = categoryClass('internal', 'InternalError');

/** The category of any thrown value; anything that is not a BerthError is `internal`. */
export function categoryOf(err: unknown): ErrorCategory {
  return err instanceof BerthError ? err.category : 'internal';
}

/** True when `err` is a BerthError of `category` (checked by category, never by message). */
export function isCategory(err: unknown, category: ErrorCategory): boolean {
  return err instanceof BerthError && err.category === category;
}

/**
 * Wrap an error with context, keeping its category: `wrap(err, 'pull busybox')`
 * gives "pull busybox: <original message>" with the original as `cause`.
 */
export function wrap(err: unknown, context: string): BerthError {
  const message = err instanceof Error ? err.message : String(err);
  return new BerthError(categoryOf(err), `${context}: ${message}`, { cause: err });
}
