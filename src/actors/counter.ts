import { defineActor } from '../runtime/actor-type.js';

export interface CounterState {
  value: number;
  count: number;
}

/** Messages the counter accepts. */
export type CounterMessage = { add: number } | { get: true };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The built-in example actor: `{"add": n}` adds n and counts the message; `{"get": true}` replies
 * `{"value", "count"}`. Used by examples, tests and benchmarks.
 */
export const counter = defineActor<CounterState>({
  name: 'counter',
  initialState(init) {
    const value = isPlainObject(init) && typeof init.value === 'number' ? init.value : 0;
    return { value, count: 0 };
  },
  validateInit(init) {
    if (!isPlainObject(init)) return 'init must be an object like {"value": 0}';
    const extra = Object.keys(init).filter((k) => k !== 'value');
    if (extra.length > 0) return `unknown init field "${extra[0]}"`;
    if (init.value !== undefined && !Number.isFinite(init.value)) return 'init.value must be a finite number';
    return undefined;
  },
  // Hand-written rather than a schema library: it runs on every message, at millions per second.
  validate(message) {
    if (isPlainObject(message)) {
      const keys = Object.keys(message);
      if (keys.length === 1) {
        if (keys[0] === 'add') return Number.isFinite(message.add) ? undefined : '"add" must be a finite number';
        if (keys[0] === 'get') return message.get === true ? undefined : '"get" must be true';
      }
    }
    return 'counter accepts {"add": <finite number>} or {"get": true}';
  },
  handle(state, message, ctx) {
    const m = message as CounterMessage;
    if ('add' in m) return { value: state.value + m.add, count: state.count + 1 };
    ctx.reply({ value: state.value, count: state.count });
    return state;
  },
});
