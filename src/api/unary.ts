import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../runtime/logger.js';
import { toServiceError } from './status.js';

/**
 * A unary gRPC handler from an async function: its result is the reply, and whatever it throws goes
 * through the one error-to-status map (src/api/status.ts). INTERNAL errors are logged, since they are
 * bugs the caller cannot fix.
 */
export function unaryHandler<Req, Res>(
  method: string,
  log: Logger,
  fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Promise<Res>;
    try {
      result = fn(call.request, call);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (reply) => callback(null, reply),
      (err: unknown) => {
        const e = toServiceError(err);
        if (e.code === grpc.status.INTERNAL) log.error({ method, err: e.details }, 'internal error');
        callback(e);
      },
    );
  };
}

/** Milliseconds left before the call's own deadline, or undefined when it has none (the ask's default applies). */
export function remainingMs(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(1, at - Date.now()) : undefined;
}
