/**
 * The one error hierarchy of cei. Every error a caller may see is a CeiError with a stable `code`;
 * `retryable` says whether the same request may succeed later unchanged. The gRPC layer maps codes
 * to status codes in exactly one place (src/api/status.ts).
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'DATA_LOSS'
  | 'INTERNAL';

export class CeiError extends Error {
  override name = 'CeiError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** Thrown when a request is malformed: nothing was stored or changed. */
export class InvalidArgumentError extends CeiError {
  override name = 'InvalidArgumentError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** Thrown when a named thing (actor type, dead letter ...) does not exist. */
export class NotFoundError extends CeiError {
  override name = 'NotFoundError';
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** Thrown when a request's deadline passed before it was answered; the request may still take effect. */
export class DeadlineExceededError extends CeiError {
  override name = 'DeadlineExceededError';
  constructor(message: string) {
    super('DEADLINE_EXCEEDED', message, { retryable: true });
  }
}

/** Thrown while the node cannot take work (starting, stopping, fenced); retry later or elsewhere. */
export class UnavailableError extends CeiError {
  override name = 'UnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, { ...options, retryable: true });
  }
}

/**
 * A tell or ask its actor took (and may already have handled) whose write did not become durable on
 * the owner and every live replica, e.g. a replica that knows a newer owner refused it: the message
 * may or may not take effect. Sending it again is safe only under the same message id, which the
 * actor's dedup window recognises; the code and retryability are those of the failed write.
 */
export class UnconfirmedMessageError extends CeiError {
  override name = 'UnconfirmedMessageError';
  constructor(actor: string, cause: unknown) {
    super(cause instanceof CeiError ? cause.code : 'UNAVAILABLE', `a message to ${actor} was taken but not confirmed durable (${errorMessage(cause)}): it may or may not take effect`, {
      cause,
      retryable: cause instanceof CeiError && cause.retryable,
    });
  }
}

/** Thrown when the system is not in a state that allows the request (e.g. an actor that failed). */
export class FailedPreconditionError extends CeiError {
  override name = 'FailedPreconditionError';
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
  }
}

/** Thrown when stored data cannot be read back as written; never repaired silently. */
export class DataLossError extends CeiError {
  override name = 'DataLossError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATA_LOSS', message, options);
  }
}

/** Thrown when a data directory cannot be opened (locked by another node, corrupt, not a cei dir). */
export class StoreOpenError extends CeiError {
  override name = 'StoreOpenError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('FAILED_PRECONDITION', message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
