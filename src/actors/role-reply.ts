/**
 * How a CEI role actor (dtrs, provisioner, epum ...) answers an ask, and how its callers read it.
 *
 * A refusal (unknown name, bad reference, conflict) is an answer, not a crash: a handler that threw
 * would be restarted and its message retried until it went to dead letters, and the caller would see
 * INTERNAL. So the role's logic throws CeiErrors, the actor shell catches them, keeps its state
 * unchanged and replies `{ok: false, error}`; callers (a gRPC service, another actor) unwrap the reply
 * back into the same CeiError, which src/api/status.ts maps to its status code. Anything that is not
 * a CeiError is a bug and is left to crash the turn.
 */
import { CeiError, type ErrorCode } from '../errors.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { ActorRef } from '../runtime/ref.js';
import type { ActorContext } from '../runtime/actor-type.js';

export type RoleReply<T> = { ok: true; value: T } | { ok: false; error: { code: ErrorCode; message: string } };

// A Record over ErrorCode, so that a code added to errors.ts fails to compile here until listed.
const CODES: Record<ErrorCode, true> = {
  INVALID_ARGUMENT: true,
  NOT_FOUND: true,
  ALREADY_EXISTS: true,
  DEADLINE_EXCEEDED: true,
  UNAVAILABLE: true,
  FAILED_PRECONDITION: true,
  RESOURCE_EXHAUSTED: true,
  DATA_LOSS: true,
  INTERNAL: true,
};

/**
 * Runs one turn of a role: `step` returns the new state and the reply value, or throws a CeiError to
 * refuse, in which case the state is returned unchanged and the refusal is the reply.
 */
export async function roleTurn<S, T>(state: S, ctx: ActorContext, step: () => { state: S; reply: T } | Promise<{ state: S; reply: T }>): Promise<S> {
  try {
    const result = await step();
    ctx.reply({ ok: true, value: result.reply } satisfies RoleReply<T>);
    return result.state;
  } catch (err) {
    if (!(err instanceof CeiError)) throw err;
    ctx.reply({ ok: false, error: { code: err.code, message: err.message } } satisfies RoleReply<T>);
    return state;
  }
}

/** The value of a role's reply, or its refusal thrown as the CeiError the role raised. */
export function unwrapReply<T>(reply: unknown, from: string): T {
  const r = reply as RoleReply<T> | null;
  if (r && r.ok === true && 'value' in r) return r.value;
  if (r && r.ok === false && r.error && Object.hasOwn(CODES, r.error.code)) throw new CeiError(r.error.code, r.error.message);
  throw new CeiError('INTERNAL', `${from} gave a reply that is not a role reply: ${JSON.stringify(reply)?.slice(0, 200)}`);
}

/**
 * Asks a role actor through an ActorService (the cluster's router on a node, so the ask reaches the
 * actor's owner wherever it lives and follows it when it fails over) and unwraps the reply.
 */
export async function askRole<T>(service: ActorService, ref: ActorRef, message: unknown, timeoutMs?: number): Promise<T> {
  return unwrapReply<T>(await service.ask(ref, message, timeoutMs), `${ref.type}/${ref.id}`);
}
