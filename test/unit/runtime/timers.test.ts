import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

const get = { get: true } as const;

async function logOf(node: TestNode, a: { type: string; id: string }): Promise<unknown[]> {
  return (await node.system.ask<RecorderState>(a, get)).log;
}

/** Waits until the actor has logged exactly `n` messages. */
async function untilLogged(node: TestNode, a: { type: string; id: string }, n: number): Promise<void> {
  await waitFor(async () => (await logOf(node, a)).length >= n, { what: `${n} messages logged by ${a.type}/${a.id}` });
  expect(await logOf(node, a)).toHaveLength(n);
}

describe('timers', () => {
  it('ctx.after sends its message to self through the mailbox once it is due', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'after');
    // The ask is answered after the turn's commit, and the timer is set in the same step.
    await node.system.ask(a, { after: { name: 't', ms: 1_000, m: { fired: 't' } } });
    node.clock.advance(999);
    expect(await logOf(node, a)).toEqual([]);
    node.clock.advance(1);
    await untilLogged(node, a, 1);
    expect(await logOf(node, a)).toEqual([{ fired: 't' }]);
    // A one-shot timer fires once, and its stored record is gone.
    node.clock.advance(10_000);
    await untilLogged(node, a, 1);
    expect(await node.store.scanKeys(`${keys.actor(a)}t\x00`)).toEqual([]);
  });

  it('ctx.every fires once per interval until cancelled', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'every');
    await node.system.ask(a, { every: { name: 'tick', ms: 100, m: { tick: true } } });
    for (let i = 1; i <= 3; i++) {
      node.clock.advance(100);
      await untilLogged(node, a, i);
    }
    await node.system.ask(a, { cancel: 'tick' });
    node.clock.advance(1_000);
    await untilLogged(node, a, 3);
    expect(await node.store.scanKeys(`${keys.actor(a)}t\x00`)).toEqual([]);
  });

  it('replaces a timer set again under the same name', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'replace');
    await node.system.ask(a, { after: { name: 't', ms: 100, m: { v: 1 } } });
    await node.system.ask(a, { after: { name: 't', ms: 500, m: { v: 2 } } });
    node.clock.advance(499);
    expect(await logOf(node, a)).toEqual([]);
    node.clock.advance(1);
    await untilLogged(node, a, 1);
    expect(await logOf(node, a)).toEqual([{ v: 2 }]);
  });

  it('still fires a timer set before the node stopped, after the store is reopened', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'persisted');
    await node.system.ask(a, { after: { name: 'later', ms: 5_000, m: { woke: true } } });
    node.clock.advance(1_000);
    const recovered = await node.restart();
    expect(recovered).toBe(1);
    node.clock.advance(3_999);
    expect(await logOf(node, a)).toEqual([]);
    node.clock.advance(1);
    await untilLogged(node, a, 1);
    expect(await logOf(node, a)).toEqual([{ woke: true }]);
  });

  it('fires a timer that came due while the node was down once it is back', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'overdue');
    await node.system.ask(a, { after: { name: 'once', ms: 1_000, m: { late: true } } });
    await node.system.ask(a, { every: { name: 'rep', ms: 1_000, m: { rep: true } } });
    await node.stop();
    node.clock.advance(10_000);
    await node.start();
    await node.system.recover();
    node.clock.advance(0);
    // The one-shot fires once; the missed intervals of the repeating one fire once, not ten times.
    await untilLogged(node, a, 2);
    expect(await logOf(node, a)).toEqual(expect.arrayContaining([{ late: true }, { rep: true }]));
    node.clock.advance(1_000);
    await untilLogged(node, a, 3);
  });

  it('does not fire a timer cancelled before the node stopped', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'cancelled');
    await node.system.ask(a, { after: { name: 'x', ms: 1_000, m: { no: true } } });
    await node.system.ask(a, { cancel: 'x' });
    await node.restart();
    node.clock.advance(5_000);
    await node.system.ask(a, { marker: true });
    expect(await logOf(node, a)).toEqual([{ marker: true }]);
  });

  it('rejects bad timer arguments with InvalidArgumentError and sets no timer', async () => {
    const errors: unknown[] = [];
    const picky = defineActor<null>({
      name: 'picky',
      initialState: () => null,
      handle(state, message, ctx) {
        const m = message as { ms: number; every?: boolean; name?: string };
        try {
          if (m.every) ctx.every(m.name ?? 'n', m.ms, {});
          else ctx.after(m.name ?? 'n', m.ms, {});
        } catch (err) {
          errors.push(err);
        }
        return state;
      },
    });
    const node = await nodes.node([picky]);
    const a = ref('picky', 'p');
    for (const m of [{ ms: -1 }, { ms: Number.POSITIVE_INFINITY }, { ms: 0, every: true }, { ms: 10, name: '' }]) {
      await node.system.ask(a, m);
    }
    expect(errors).toHaveLength(4);
    expect(errors.every((e) => e instanceof InvalidArgumentError)).toBe(true);
    expect(await node.store.scanKeys(`${keys.actor(a)}t\x00`)).toEqual([]);
  });
});
