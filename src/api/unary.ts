import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../runtime/logger.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { ActorRef } from '../runtime/ref.js';
import { InvalidArgumentError } from '../errors.js';
import { askRole } from '../actors/role-reply.js';
import { toServiceError } from './status.js';

export type UnaryCall = grpc.ServerUnaryCall<unknown, unknown>;

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
export function remainingMs(call: UnaryCall): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(1, at - Date.now()) : undefined;
}

/** `unaryHandler` with the service's logger bound. */
export function handlerFactory(log: Logger) {
  return <Req, Res>(method: string, fn: Parameters<typeof unaryHandler<Req, Res>>[2]) => unaryHandler(method, log, fn);
}

/**
 * Asks one role actor within the call's deadline, checking the message with the actor's own parser
 * first, so bad input is refused here without a hop to the actor's node.
 */
export function roleAsker<Replies>(system: ActorService, ref: ActorRef, parse: (message: unknown) => unknown) {
  return <Op extends keyof Replies & string>(call: UnaryCall, message: { op: Op } & Record<string, unknown>) =>
    askRole<Replies[Op]>(system, ref, parse(message), remainingMs(call));
}

/** A JSON document from a string field, or InvalidArgumentError naming the field. */
export function jsonField(text: string, field: string, maxPayloadBytes: number): unknown {
  if (!text) throw new InvalidArgumentError(`${field} is required (a JSON object)`);
  const bytes = Buffer.byteLength(text);
  if (bytes > maxPayloadBytes) throw new InvalidArgumentError(`${field} is ${bytes} bytes; the limit is ${maxPayloadBytes} bytes (--max-payload)`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${field} is not valid JSON: ${(err as Error).message}`);
  }
}
