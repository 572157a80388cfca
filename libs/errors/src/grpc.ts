import { BerthError, categoryOf, type ErrorCategory } from './errors.js';

/** gRPC status codes (the numbers are fixed by the gRPC protocol). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

const categoryToCode: Record<ErrorCategory, GrpcCode> = {
  'invalid-argument': GrpcCode.INVALID_ARGUMENT,
  'not-found': GrpcCode.NOT_FOUND,
  'already-exists': GrpcCode.ALREADY_EXISTS,
  'failed-precondition': GrpcCode.FAILED_PRECONDITION,
  'resource-exhausted': GrpcCode.RESOURCE_EXHAUSTED,
  unavailable: GrpcCode.UNAVAILABLE,
  unimplemented: GrpcCode.UNIMPLEMENTED,
  'deadline-exceeded': GrpcCode.DEADLINE_EXCEEDED,
  aborted: GrpcCode.ABORTED,
  'permission-denied': GrpcCode.PERMISSION_DENIED,
  canceled: GrpcCode.CANCELLED,
  internal: GrpcCode.INTERNAL,
};

const codeToCategory = new Map<number, ErrorCategory>(
  Object.entries(categoryToCode).map(([category, code]) => [code, category as ErrorCategory]),
);
codeToCategory.set(GrpcCode.OUT_OF_RANGE, 'invalid-argument');
codeToCategory.set(GrpcCode.UNAUTHENTICATED, 'permission-denied');

export function grpcCodeOf(err: unknown): GrpcCode {
  return categoryToCode[categoryOf(err)];
}

export interface GrpcStatusLike {
  code: number;
  details: string;
}

/**
 * The status a server sends for `err`. Errors that are not BerthErrors are
 * internal: their message is replaced so that no stack or path leaks out.
 */
export function toGrpcStatus(err: unknown): GrpcStatusLike {
  if (err instanceof BerthError) return { code: categoryToCode[err.category], details: err.message };
  return { code: GrpcCode.INTERNAL, details: 'internal error' };
}

/** The BerthError a client raises for a failed call's status. */
export function fromGrpcStatus(status: GrpcStatusLike, context?: string): BerthError {
  const category = codeToCategory.get(status.code) ?? 'internal';
  // A status passed on from another Berth service already names the method.
  const message = context === undefined || status.details.startsWith(`${context}: `) ? status.details : `${context}: ${status.details}`;
  return new BerthError(category, message, { cause: status });
}
