import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { keys, Store } from '../../../src/runtime/store.js';
import { ActorSystem, RUNTIME_TEST_PRESET } from '../../../src/runtime/runtime.js';
import { silentLogger, type Logger } from '../../../src/runtime/logger.js';
import { counter } from '../../../src/actors/counter.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

const nodes = useTestNodes();

const get = { get: true } as const;

describe('durable mailbox', () => {
  it('lets go of a message once it is handled: an idle actor holds no payload', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const node = await nodes.node([counter]);
    const c = ref('counter', 'lets-go');
    let payload: { add: number } | undefined = { add: 2 };
    const held = new WeakRef(payload);
    await node.system.tell(c, payload);
    payload = undefined;
    expect(await node.system.ask(c, { get: true })).toMatchObject({ value: 2, count: 1 });
    await waitFor(
      async () => {
        gc();
        await new Promise((resolve) => setImmediate(resolve));
        return held.deref() === undefined;
      },
      { what: 'the handled payload collected' },
    );
  });

  it('handles many tells from one caller in call order, even to an actor not yet loaded', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'order');
    expect(node.system.isLoaded(a)).toBe(false);
    const n = 500;
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => node.system.tell(a, { i })));
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual(Array.from({ length: n }, (_, i) => ({ i })));
    expect(acks.map((ack) => ack.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(acks.every((ack) => !ack.duplicate && ack.messageId === '')).toBe(true);
  });

  it('keeps call order when calls arrive while the actor is loading and after it loaded', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'mixed');
    const early = Array.from({ length: 50 }, (_, i) => node.system.tell(a, { i }));
    await early[0];
    const late = Array.from({ length: 50 }, (_, i) => node.system.tell(a, { i: 50 + i }));
    await Promise.all([...early, ...late]);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })));
  });

  it('gives each actor its own monotonic seqs, as the handler sees them', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'a');
    const b = ref('recorder', 'b');
    const acks = await Promise.all(Array.from({ length: 60 }, (_, i) => node.system.tell(i % 3 === 0 ? b : a, { i })));
    const aSeqs = acks.filter((_, i) => i % 3 !== 0).map((ack) => ack.seq);
    const bSeqs = acks.filter((_, i) => i % 3 === 0).map((ack) => ack.seq);
    expect(aSeqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(bSeqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const stateA = await node.system.ask<RecorderState>(a, get);
    expect(stateA.seqs).toEqual(aSeqs);
  });

  it('keeps state and continues seqs after the store is closed and opened again', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'survivor');
    for (let i = 0; i < 10; i++) await node.system.tell(a, { i });
    // The ask took seq 11.
    const before = await node.system.ask<RecorderState>(a, get);
    await node.restart();
    const ack = await node.system.tell(a, { i: 10 });
    expect(ack.seq).toBe(12);
    const after = await node.system.ask<RecorderState>(a, get);
    expect(after.log).toEqual([...before.log, { i: 10 }]);
    expect(after.seqs).toEqual([...before.seqs, 12]);
  });

  it('removes a message from the stored mailbox once it is handled', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'tidy');
    await Promise.all(Array.from({ length: 20 }, (_, i) => node.system.tell(a, { i })));
    await node.system.ask(a, get);
    await waitFor(async () => (await node.store.scanKeys(`${keys.actor(a)}m\x00`)).length === 0, { what: 'stored mailbox to empty' });
    const state = JSON.parse((await node.store.get(keys.state(keys.actor(a))))!) as { v: RecorderState; h: number };
    expect(state.h).toBe(21);
    expect(state.v.log).toHaveLength(20);
  });

  it('handles acknowledged mail left at shutdown after recovery, in order, exactly once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = defineActor<{ log: number[] }>({
      name: 'slow',
      initialState: () => ({ log: [] }),
      async handle(state, message, ctx) {
        const m = message as { i?: number; get?: true };
        if (m.get) {
          ctx.reply(state);
          return state;
        }
        if (m.i === 0) await gate;
        return { log: [...state.log, m.i!] };
      },
    });
    const node = await nodes.node([slow]);
    const a = ref('slow', 'a');
    await Promise.all(Array.from({ length: 5 }, (_, i) => node.system.tell(a, { i })));
    // Message 0 holds the turn; 1..4 are acknowledged and wait in the mailbox.
    await waitFor(() => node.system.isLoaded(a));
    const stopping = node.stop();
    release();
    await within(stopping, 'node stop');
    await node.start();
    // The turn in progress finished; the rest stayed in the stored mailbox.
    expect(await node.store.scanKeys(`${keys.actor(a)}m\x00`)).toHaveLength(4);
    expect(await node.system.recover()).toBe(1);
    const state = await node.system.ask<{ log: number[] }>(a, get);
    expect(state.log).toEqual([0, 1, 2, 3, 4]);
  });

  it('recovers only actors whose copy holds mail, timers or an outbox: an awake mark left by an idle actor is skipped and kept', async () => {
    const node = await nodes.node([recorder]);
    const timed = ref('recorder', 'with-timer');
    const idle = Array.from({ length: 3 }, (_, i) => ref('recorder', `idle-${i}`));
    await node.system.ask(timed, { after: { name: 't', ms: 3_600_000, m: 'late' } });
    // Handled at once; the fake clock never lets the quiet sweep clear their marks (cell.markQuiet).
    for (const a of idle) await node.system.tell(a, { note: 1 });
    await node.stop();
    await node.start();
    expect(await node.store.scanKeys(keys.awakePrefix)).toHaveLength(1 + idle.length);
    expect(await node.system.recover()).toBe(1);
    expect(node.system.isLoaded(timed)).toBe(true);
    expect(idle.filter((a) => node.system.isLoaded(a))).toEqual([]);
    expect(await node.store.scanKeys(keys.awakePrefix)).toHaveLength(1 + idle.length);
    // Called, an idle actor loads as any other, with what it handled.
    expect((await node.system.ask<RecorderState>(idle[0]!, get)).log).toEqual([{ note: 1 }]);
  });

  it('skips mail at or below the handled mark when it loads, and deletes it', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'leftover');
    await node.system.tell(a, { note: 1 });
    await node.system.tell(a, { note: 2 });
    await node.stop();
    await node.start();
    // What a replica can keep after a resent batch: the put of a message already handled.
    const leftover = keys.mail(keys.actor(a), 1);
    await node.store.write([{ type: 'put', key: leftover, value: JSON.stringify({ s: 1, p: { note: 1 } }) }], true);
    expect((await node.system.ask<RecorderState>(a, get)).log).toEqual([{ note: 1 }, { note: 2 }]);
    await waitFor(async () => (await node.store.get(leftover)) === undefined, { what: 'the leftover mail to be deleted' });
  });

  it('a shutdown during recovery ends the recovery quietly: no actor fails on the store closing under it', async () => {
    const node = await nodes.node([recorder]);
    const actors = Array.from({ length: 200 }, (_, i) => ref('recorder', `pending-${i}`));
    // A timer far off keeps each actor's pending-work mark: each is recovered on the next start.
    await Promise.all(actors.map((a) => node.system.ask(a, { after: { name: 't', ms: 3_600_000, m: 'late' } })));
    await node.stop();
    const errors: unknown[] = [];
    const logger: Logger = { ...silentLogger, error: (obj, msg) => errors.push({ ...obj, msg }), child: () => logger };
    const store = await Store.open(node.dir);
    const system = new ActorSystem({ store, clock: node.clock, types: [recorder], logger }, RUNTIME_TEST_PRESET);
    const recovering = system.recover(4);
    await system.shutdown();
    await store.close();
    const recovered = await within(recovering, 'the recovery to end');
    expect(recovered).toBeLessThan(actors.length);
    expect(errors).toEqual([]);
  });

  it('an actor released while it loads stops once loaded: calls meanwhile reach one incarnation, nothing is overwritten', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'released-while-loading');
    await node.system.tell(a, { note: 0 });
    await node.system.release(a);
    // The first tell starts a load; the release (a rebalance run's) comes while the store scan runs,
    // and the second tell must wait for it rather than load a second incarnation beside the first.
    const first = node.system.tell(a, { note: 1 });
    const released = node.system.release(a);
    const second = node.system.tell(a, { note: 2 });
    const acks = await within(Promise.all([first, second]), 'both tells acknowledged');
    await within(released, 'the release');
    expect(new Set(acks.map((ack) => ack.seq)).size).toBe(2);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ note: 0 }, { note: 1 }, { note: 2 }]);
  });

  it('answers an ask with the reply of the handler, or null without one', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'asked');
    expect(await node.system.ask(a, { note: 1 })).toBeNull();
    expect(await node.system.ask(a, get)).toEqual({ log: [{ note: 1 }], seqs: [1] });
  });
});
