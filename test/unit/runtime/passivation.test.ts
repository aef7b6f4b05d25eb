import { describe, expect, it } from 'vitest';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

const get = { get: true } as const;

describe('passivation', () => {
  it('unloads an actor idle for idleMs and reactivates it with its state on the next message', async () => {
    // No quiet sweep: its write of the awake mark, in flight when passivateIdle runs, would hold the actor a tick.
    const node = await nodes.node([recorder], { options: { idleMs: 10_000, quietAfterMs: 0 } });
    const { system, clock } = node;
    const a = ref('recorder', 'sleepy');
    // Off the sweep's 5 s grid, so that the calls below, not the sweep, do the unloading.
    clock.advance(1_234);
    await system.tell(a, { n: 1 });
    await system.tell(a, { n: 2 });
    await system.ask(a, get);
    clock.advance(9_999);
    expect(system.passivateIdle()).toBe(0);
    expect(system.isLoaded(a)).toBe(true);
    expect((await system.describe(a)).status).toBe('active');
    clock.advance(1);
    expect(system.passivateIdle()).toBe(1);
    expect(system.isLoaded(a)).toBe(false);
    expect(system.loadedCount).toBe(0);
    expect((await system.describe(a)).status).toBe('passivated');
    const ack = await system.tell(a, { n: 3 });
    expect(ack.seq).toBe(4);
    expect(system.isLoaded(a)).toBe(true);
    const state = await system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('is done by the periodic sweep on the runtime clock, without a call', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 1_000 } });
    const a = ref('recorder', 'swept');
    await node.system.ask(a, { n: 1 });
    await waitFor(() => !node.system.isLoaded(a), { step: () => node.clock.advance(100), what: 'the sweep to unload the actor' });
    expect((await node.system.describe(a)).status).toBe('passivated');
    expect((await node.system.ask<RecorderState>(a, get)).log).toEqual([{ n: 1 }]);
  });

  it('counts time from the last message, not from activation', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 1_000 } });
    const { system, clock } = node;
    const a = ref('recorder', 'busy');
    await system.ask(a, { n: 1 });
    clock.advance(900);
    await system.ask(a, { n: 2 });
    clock.advance(900);
    expect(system.passivateIdle()).toBe(0);
    clock.advance(100);
    expect(system.passivateIdle()).toBe(1);
  });

  it("uses the type's idleMs over the runtime's, and 0 means never", async () => {
    const pinned = defineActor<null>({ name: 'pinned', initialState: () => null, idleMs: 0, handle: (s) => s });
    const quick = defineActor<null>({ name: 'quick', initialState: () => null, idleMs: 100, handle: (s) => s });
    const node = await nodes.node([pinned, quick], { options: { idleMs: 60_000 } });
    const p = ref('pinned', 'p');
    const q = ref('quick', 'q');
    await node.system.ask(p, {});
    await node.system.ask(q, {});
    node.clock.advance(100);
    expect(node.system.passivateIdle()).toBe(1);
    expect(node.system.isLoaded(q)).toBe(false);
    node.clock.advance(10 * 60_000);
    node.system.passivateIdle();
    expect(node.system.isLoaded(p)).toBe(true);
  });

  it('keeps an actor with a pending timer loaded', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 1_000 } });
    const a = ref('recorder', 'waiting');
    await node.system.ask(a, { after: { name: 't', ms: 5_000, m: { fired: true } } });
    node.clock.advance(4_000);
    expect(node.system.passivateIdle()).toBe(0);
    expect(node.system.isLoaded(a)).toBe(true);
    node.clock.advance(1_000);
    await waitFor(async () => (await node.system.ask<RecorderState>(a, get)).log.length === 1, { what: 'the timer message' });
  });

  it('keeps a parent loaded while a child is loaded', async () => {
    const parent = defineActor<null>({
      name: 'parent',
      initialState: () => null,
      handle(state, message, ctx) {
        ctx.spawn(ref('child', 'c'));
        ctx.reply('ok');
        return state;
      },
    });
    const child = defineActor<null>({ name: 'child', initialState: () => null, idleMs: 10_000, handle: (s) => s });
    const node = await nodes.node([parent, child], { options: { idleMs: 1_000, quietAfterMs: 0 } });
    const p = ref('parent', 'p');
    const c = ref('child', 'c');
    await node.system.ask(p, { spawn: true });
    // Spawned, and the parent's outbox entry for it acknowledged and removed.
    await waitFor(
      async () =>
        (await node.store.get(keys.registry(c))) !== undefined && (await node.store.scanKeys(`${keys.actor(p)}o\x00`)).length === 0,
      { what: 'the child to be spawned' },
    );
    // The parent is idle far past its 1 s, but its child (10 s) is still loaded.
    node.clock.advance(5_000);
    node.system.passivateIdle();
    expect(node.system.isLoaded(p)).toBe(true);
    expect(node.system.isLoaded(c)).toBe(true);
    // Once the child is unloaded, the parent goes too.
    node.clock.advance(5_000);
    node.system.passivateIdle();
    expect(node.system.isLoaded(c)).toBe(false);
    node.system.passivateIdle();
    expect(node.system.isLoaded(p)).toBe(false);
  });

  it('is not recovered on restart when it had nothing pending', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 1_000 } });
    const a = ref('recorder', 'quiet');
    // Off the sweep's 500 ms grid, so that the call below, not the sweep, does the unloading.
    node.clock.advance(123);
    await node.system.ask(a, { n: 1 });
    node.clock.advance(1_000);
    expect(node.system.passivateIdle()).toBe(1);
    await waitFor(async () => (await node.store.get(keys.awake(a))) === undefined, { what: 'the awake mark to be removed' });
    expect(await node.restart()).toBe(0);
    expect(node.system.isLoaded(a)).toBe(false);
    expect((await node.system.describe(a)).status).toBe('passivated');
    expect((await node.system.ask<RecorderState>(a, get)).log).toEqual([{ n: 1 }]);
  });

  it('is not recovered on restart once it was idle a second, while still loaded', async () => {
    const node = await nodes.node([recorder], { options: { idleMs: 0 } });
    const a = ref('recorder', 'handled');
    await node.system.tell(a, { n: 1 });
    await node.system.ask(a, { n: 2 });
    // Busy actors keep the mark: it goes only after a second without mail.
    node.clock.advance(500);
    node.system.markQuiet();
    expect(await node.store.get(keys.awake(a))).toBe('');
    await waitFor(async () => (await node.store.get(keys.awake(a))) === undefined, { step: () => node.clock.advance(100), what: 'the awake mark to be removed' });
    expect(node.system.isLoaded(a)).toBe(true);
    expect(await node.restart()).toBe(0);
    expect(node.system.isLoaded(a)).toBe(false);
    expect((await node.system.ask<RecorderState>(a, get)).log).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('reports a never-seen actor as inactive, not passivated', async () => {
    const node = await nodes.node([recorder]);
    expect((await node.system.describe(ref('recorder', 'nobody'))).status).toBe('inactive');
  });
});
