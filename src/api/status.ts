import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { CeiError, type ErrorCode } from '../errors.js';

/** The one map from cei error codes to gRPC status codes. */
const CODES: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  DATA_LOSS: status.DATA_LOSS,
  INTERNAL: status.INTERNAL,
};

/** Status codes after which the same request may succeed if sent again (with the same message id). */
export const RETRYABLE_CODES: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED]);

/** A gRPC error for `err`; errors that are not CeiErrors are INTERNAL and keep their message. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const code = err instanceof CeiError ? CODES[err.code] : status.INTERNAL;
  const details = err instanceof Error ? err.message : String(err);
  return { code, details, metadata: new Metadata(), name: 'ServiceError', message: details };
}
