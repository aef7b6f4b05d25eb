import { describe, expect, it } from 'vitest';
import { counter, type CounterState } from '../../../src/actors/counter.js';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { ref } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

/** Forwards `{forward: n}` to counter/target as `{add: n}`. */
const relay = defineActor<null>({
  name: 'relay',
  initialState: () => null,
  handle(state, message, ctx) {
    ctx.tell(ref('counter', 'target'), { add: (message as { forward: number }).forward });
    return state;
  },
});

describe('stop', () => {
  it('ends the actor: state gone, listed no more, a later message starts it afresh', async () => {
    const node = await nodes.node([counter]);
    const c = ref('counter', 'a');
    await node.system.tell(c, { add: 5 });
    expect(await node.system.ask<CounterState>(c, { get: true })).toEqual({ value: 5, count: 1 });
    await node.system.stop(c);
    expect((await node.system.describe(c)).status).toBe('inactive');
    expect((await node.system.list({ type: 'counter' })).actors).toEqual([]);
    expect(await node.system.ask<CounterState>(c, { get: true })).toEqual({ value: 0, count: 0 });
  });

  it('continues seqs after a stop, so a restarted sender is not mistaken for a duplicate', async () => {
    const node = await nodes.node([relay, counter]);
    const r = ref('relay', 'r');
    const target = ref('counter', 'target');
    const first = await node.system.tell(r, { forward: 1 });
    await waitFor(async () => (await node.system.ask<CounterState>(target, { get: true })).count === 1);
    await node.system.stop(r);
    const second = await node.system.tell(r, { forward: 10 });
    expect(second.seq).toBeGreaterThan(first.seq);
    await waitFor(async () => (await node.system.ask<CounterState>(target, { get: true })).count === 2, {
      what: "the second incarnation's tell to arrive (not dropped as a duplicate of the first's)",
    });
    expect(await node.system.ask<CounterState>(target, { get: true })).toEqual({ value: 11, count: 2 });
  });
});
