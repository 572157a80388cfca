export {
  AbortedError,
  AlreadyExistsError,
  BerthError,
  CanceledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  errorCategories,
  categoryOf,
  isCategory,
  wrap,
} from './errors.js';
export type { ErrorCategory, BerthErrorOptions } from './errors.js';
export { GrpcCode, grpcCodeOf, toGrpcStatus, fromGrpcStatus } from './grpc.js';
export type { GrpcStatusLike } from './grpc.js';
