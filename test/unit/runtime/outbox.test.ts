import { describe, expect, it, vi } from 'vitest';
import { counter, type CounterState } from '../../../src/actors/counter.js';
import { defineActor } from '../../../src/runtime/actor-type.js';
import type { OutboxItem, StoredState } from '../../../src/runtime/envelope.js';
import { refKey } from '../../../src/runtime/ref.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

const nodes = useTestNodes();

/**
 * `{forward: n, to}` tells counter `to` to add n; `{spawn: id, value, then?: n}` spawns counter `id`
 * with that value and, when `then` is given, tells it to add `then` in the same turn.
 */
const relay = defineActor<{ turns: number }>({
  name: 'relay',
  initialState: () => ({ turns: 0 }),
  handle(state, message, ctx) {
    const m = message as { forward?: number; to?: string; spawn?: string; value?: number; then?: number };
    if (m.forward !== undefined) ctx.tell(ref('counter', m.to ?? 'target'), { add: m.forward });
    if (m.spawn !== undefined) {
      ctx.spawn(ref('counter', m.spawn), { value: m.value ?? 0 });
      if (m.then !== undefined) ctx.tell(ref('counter', m.spawn), { add: m.then });
    }
    ctx.reply('ok');
    return { turns: state.turns + 1 };
  },
});

const r = ref('relay', 'r');
const target = ref('counter', 'target');

async function counterOf(node: TestNode, c = target): Promise<CounterState> {
  return node.system.ask<CounterState>(c, { get: true });
}

/** Waits until the relay's outbox is empty in the store: every item delivered and acknowledged. */
async function outboxDrained(node: TestNode): Promise<void> {
  await waitFor(async () => (await node.store.scanKeys(`${keys.actor(r)}o\x00`)).length === 0, { what: "the relay's outbox to drain" });
}

describe('outbox', () => {
  it('delivers what a handler tells another actor exactly once', async () => {
    const node = await nodes.node([relay, counter]);
    await Promise.all(Array.from({ length: 50 }, (_, i) => node.system.tell(r, { forward: i + 1 })));
    await waitFor(async () => (await counterOf(node)).count === 50, { what: 'the counter to see 50 adds' });
    await outboxDrained(node);
    expect(await counterOf(node)).toEqual({ value: (50 * 51) / 2, count: 50 });
    // Each delivery carried an id derived from (sender, turn, index); the target remembers them.
    const ids = (await node.store.scanKeys(`${keys.actor(target)}d\x00`)).map((k) => k.slice(k.lastIndexOf('\x00') + 1));
    expect(ids).toHaveLength(50);
    expect(ids).toContain(`${refKey(r)}#1.0`);
  });

  it('tells the sender who sent it (ctx.sender)', async () => {
    const echo = defineActor<null>({
      name: 'echo',
      initialState: () => null,
      handle(state, message, ctx) {
        ctx.tell(ref('recorder', 'log'), { from: ctx.sender ? refKey(ctx.sender) : null, m: message });
        return state;
      },
    });
    const pinger = defineActor<null>({
      name: 'pinger',
      initialState: () => null,
      handle(state, message, ctx) {
        ctx.tell(ref('echo', 'e'), message);
        return state;
      },
    });
    const node = await nodes.node([echo, pinger, recorder]);
    await node.system.tell(ref('pinger', 'p'), 'hello');
    await node.system.tell(ref('echo', 'e'), 'direct');
    await waitFor(async () => (await node.system.ask<RecorderState>(ref('recorder', 'log'), { get: true })).log.length === 2);
    const { log } = await node.system.ask<RecorderState>(ref('recorder', 'log'), { get: true });
    expect(log).toEqual(expect.arrayContaining([{ from: 'pinger/p', m: 'hello' }, { from: null, m: 'direct' }]));
  });

  it('does not deliver again an outbox item that is replayed after a crash', async () => {
    const node = await nodes.node([relay, counter]);
    await node.system.ask(r, { forward: 5 });
    await waitFor(async () => (await counterOf(node)).count === 1);
    await outboxDrained(node);
    await node.stop();
    // As if the node died after the delivery but before the outbox entry was removed.
    const item: OutboxItem = { k: 'tell', to: refKey(target), p: { add: 5 }, id: `${refKey(r)}#1.0` };
    await node.start();
    await node.store.write(
      [
        { type: 'put', key: keys.outbox(keys.actor(r), '1.0'), value: JSON.stringify(item) },
        { type: 'put', key: keys.awake(r), value: '' },
      ],
      true,
    );
    await node.stop();
    expect(await node.restart()).toBeGreaterThanOrEqual(1);
    await outboxDrained(node);
    expect(await counterOf(node)).toEqual({ value: 5, count: 1 });
  });

  it('keeps an item whose delivery the stopping node refused, and delivers it after a restart', async () => {
    const node = await nodes.node([relay, counter]);
    const deliveries: Array<Promise<void>> = [];
    const deliver = node.system.deliver.bind(node.system);
    let shutdown: Promise<void> | undefined;
    vi.spyOn(node.system, 'deliver').mockImplementation((from, item) => {
      // The node starts shutting down just as the committed turn's delivery goes out: it is refused.
      shutdown ??= node.system.shutdown();
      const delivery = deliver(from, item);
      deliveries.push(delivery);
      return delivery;
    });
    await node.system.tell(r, { forward: 7 });
    await waitFor(() => deliveries.length === 1, { what: 'the delivery attempt' });
    await within(shutdown!, 'shutdown');
    expect((await Promise.allSettled(deliveries))[0]!.status).toBe('rejected');
    // Whatever the sender did about the refusal is written before the store closes.
    await node.store.committer.drain();
    await node.restart();
    await outboxDrained(node);
    await waitFor(async () => (await counterOf(node)).count === 1, { what: 'the forwarded add to arrive' });
    expect(await counterOf(node)).toEqual({ value: 7, count: 1 });
  });

  it('ctx.spawn creates a child with its init, supervised by the spawner, once', async () => {
    const node = await nodes.node([relay, counter]);
    const child = ref('counter', 'child');
    await node.system.ask(r, { spawn: 'child', value: 40 });
    await outboxDrained(node);
    expect(await counterOf(node, child)).toEqual({ value: 40, count: 0 });
    await node.system.tell(child, { add: 2 });
    // Spawning again is a no-op: the child keeps its state.
    await node.system.ask(r, { spawn: 'child', value: 0 });
    await outboxDrained(node);
    expect(await counterOf(node, child)).toEqual({ value: 42, count: 1 });
    const stored = JSON.parse((await node.store.get(keys.state(keys.actor(child))))!) as StoredState;
    expect(stored.p).toBe(refKey(r));
    const parent = JSON.parse((await node.store.get(keys.state(keys.actor(r))))!) as StoredState;
    expect(parent.c).toEqual([refKey(child)]);
    expect((await node.system.describe(child)).status).toBe('active');
  });

  it('ctx.spawn followed by ctx.tell to the child in the same turn: created first, then told', async () => {
    const node = await nodes.node([relay, counter]);
    const child = ref('counter', 'eager');
    await node.system.ask(r, { spawn: 'eager', value: 100, then: 1 });
    await outboxDrained(node);
    await waitFor(async () => (await counterOf(node, child)).count === 1, { what: 'the add to the child' });
    expect(await counterOf(node, child)).toEqual({ value: 101, count: 1 });
    const stored = JSON.parse((await node.store.get(keys.state(keys.actor(child))))!) as StoredState;
    expect(stored.p).toBe(refKey(r));
  });
});
