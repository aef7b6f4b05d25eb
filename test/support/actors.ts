/** Actor types that unit tests share. */
import { defineActor } from '../../src/runtime/actor-type.js';
import type { ActorRef } from '../../src/runtime/ref.js';

export interface RecorderState {
  /** Every message handled except the control messages below, in handling order. */
  log: unknown[];
  /** The mailbox seq of each logged message. */
  seqs: number[];
}

/**
 * Messages with a meaning of their own; anything else is appended to the log.
 * - `{get: true}` replies the state.
 * - `{after|every: {name, ms, m}}` sets a timer that sends `m` to self; replies "ok".
 * - `{cancel: name}` cancels a timer; replies "ok".
 */
export type RecorderControl =
  | { get: true }
  | { after: { name: string; ms: number; m: unknown } }
  | { every: { name: string; ms: number; m: unknown } }
  | { cancel: string };

function has<K extends string>(m: unknown, key: K): m is Record<K, unknown> {
  return typeof m === 'object' && m !== null && key in m;
}

/** Records what it handles, in order: the test actor for mailbox order, dedup, timers and passivation. */
export const recorder = defineActor<RecorderState>({
  name: 'recorder',
  initialState: () => ({ log: [], seqs: [] }),
  handle(state, message, ctx) {
    if (has(message, 'get')) {
      ctx.reply(state);
      return state;
    }
    if (has(message, 'after')) {
      const t = message.after as { name: string; ms: number; m: unknown };
      ctx.after(t.name, t.ms, t.m);
      ctx.reply('ok');
      return state;
    }
    if (has(message, 'every')) {
      const t = message.every as { name: string; ms: number; m: unknown };
      ctx.every(t.name, t.ms, t.m);
      ctx.reply('ok');
      return state;
    }
    if (has(message, 'cancel')) {
      ctx.cancelTimer(message.cancel as string);
      ctx.reply('ok');
      return state;
    }
    return { log: [...state.log, message], seqs: [...state.seqs, ctx.seq] };
  },
});

export function ref(type: string, id: string): ActorRef {
  return { type, id };
}
