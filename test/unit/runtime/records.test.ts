import { describe, expect, it } from 'vitest';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { keys } from '../../../src/runtime/store.js';
import { ref } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

type LogMessage = { append: string } | { drop: number } | { read: number } | { boom: string } | { names: true };

/** A log kept in records: the state holds only the next index, as a stream's would. */
const log = defineActor<{ next: number }>({
  name: 'log',
  initialState: () => ({ next: 0 }),
  handle(state, message, ctx) {
    const m = message as LogMessage;
    if ('append' in m) {
      ctx.putRecord(`e${state.next}`, { text: m.append });
      return { next: state.next + 1 };
    }
    if ('drop' in m) {
      ctx.deleteRecord(`e${m.drop}`);
      return state;
    }
    if ('boom' in m) {
      // Changes of a turn whose handler throws must not survive it.
      ctx.putRecord(`e${state.next}`, { text: m.boom });
      ctx.deleteRecord('e0');
      throw new Error('boom');
    }
    if ('read' in m) {
      ctx.reply(ctx.record(`e${m.read}`) ?? null);
      return state;
    }
    return state;
  },
  supervision: { backoffInitialMs: 1, backoffMaxMs: 1 },
});

const read = async (system: { ask<T>(r: ReturnType<typeof ref>, m: unknown): Promise<T> }, i: number) =>
  system.ask<{ text: string } | null>(ref('log', 'a'), { read: i });

describe('actor records', () => {
  it('are written with the turn, read back at once, and kept across a restart of the node', async () => {
    const node = await nodes.node([log]);
    const a = ref('log', 'a');
    await node.system.tell(a, { append: 'one' });
    await node.system.tell(a, { append: 'two' });
    expect(await read(node.system, 1)).toEqual({ text: 'two' });
    // Each record is a key of its own under the actor, not part of the state snapshot.
    const stored = await node.store.scan(keys.actor(a));
    expect(stored.filter(([k]) => k.includes('r\x00e')).map(([, v]) => JSON.parse(v))).toEqual([{ text: 'one' }, { text: 'two' }]);
    expect(JSON.parse(stored.find(([k]) => k === keys.state(keys.actor(a)))![1]).v).toEqual({ next: 2 });

    await node.restart();
    expect(await read(node.system, 0)).toEqual({ text: 'one' });
    await node.system.tell(a, { drop: 0 });
    expect(await read(node.system, 0)).toBeNull();
    await node.restart();
    expect(await read(node.system, 0)).toBeNull();
    expect(await read(node.system, 1)).toEqual({ text: 'two' });
  });

  it('of a turn whose handler threw are discarded, and earlier turns of the same run keep theirs', async () => {
    const node = await nodes.node([log]);
    const a = ref('log', 'a');
    // Queued together so they run in one run of turns: an append, then a turn that throws (tried
    // until it is dead-lettered, the clock stepped past each restart's backoff).
    await Promise.all([node.system.tell(a, { append: 'kept' }), node.system.tell(a, { boom: 'lost' })]);
    await waitFor(
      async () => {
        const d = await node.system.describe(a);
        return d.deadLetters === 1 && d.status === 'active';
      },
      { step: () => node.clock.advance(10), what: 'the throwing message dead-lettered and the actor active again' },
    );
    expect(await read(node.system, 0)).toEqual({ text: 'kept' });
    expect(await read(node.system, 1)).toBeNull();
    await node.restart();
    expect(await read(node.system, 0)).toEqual({ text: 'kept' });
    expect(await read(node.system, 1)).toBeNull();
  });

  it('are deleted when the actor stops', async () => {
    const node = await nodes.node([log]);
    const a = ref('log', 'a');
    await node.system.tell(a, { append: 'one' });
    await read(node.system, 0);
    await node.system.stop(a);
    const stored = await node.store.scanKeys(keys.actor(a));
    expect(stored.filter((k) => k.includes('r\x00'))).toEqual([]);
    expect(await read(node.system, 0)).toBeNull();
  });

  it('refuse a name that is empty or holds a NUL, and an undefined value', async () => {
    const node = await nodes.node([
      defineActor({
        name: 'bad',
        initialState: () => ({}),
        handle(state, message, ctx) {
          const m = message as { name: string; value?: unknown };
          try {
            ctx.putRecord(m.name, m.value);
            ctx.reply('ok');
          } catch (err) {
            ctx.reply((err as Error).message);
          }
          return state;
        },
      }),
    ]);
    const b = ref('bad', 'b');
    expect(await node.system.ask(b, { name: '', value: 1 })).toMatch(/non-empty string/);
    expect(await node.system.ask(b, { name: 'a\x00b', value: 1 })).toMatch(/non-empty string/);
    expect(await node.system.ask(b, { name: 'x' })).toMatch(/must not be undefined/);
    expect(await node.system.ask(b, { name: 'x', value: null })).toBe('ok');
  });
});
