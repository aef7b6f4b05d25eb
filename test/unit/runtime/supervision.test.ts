import { describe, expect, it } from 'vitest';
import { defineActor, type SupervisionOptions, type SupervisionStrategy } from '../../../src/runtime/actor-type.js';
import type { ActorRef } from '../../../src/runtime/ref.js';
import { keys } from '../../../src/runtime/store.js';
import { RestartIntensity, restartSet } from '../../../src/runtime/supervisor.js';
import { ref } from '../../support/actors.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

interface Counted {
  /** onActivate runs: 1 after the first activation, +1 per restart. */
  activations: number;
  handled: number;
}

/**
 * A `boss` (the parent, with the given supervision) and its `kid`s. `{spawn: [ids]}` to the boss
 * spawns kids in that order. `{crash: tag, times: n}` to a kid throws the first n times it is
 * handled (counted outside the actor, as a real fault would be). Both count their activations.
 */
function family(supervision: Partial<SupervisionOptions>) {
  const thrown = new Map<string, number>();
  const countActivation = (s: Counted): Counted => ({ ...s, activations: s.activations + 1 });
  const kid = defineActor<Counted>({
    name: 'kid',
    initialState: () => ({ activations: 0, handled: 0 }),
    onActivate: countActivation,
    handle(state, message, ctx) {
      const m = message as { get?: true; crash?: string; times?: number };
      if (m.get) {
        ctx.reply(state);
        return state;
      }
      if (m.crash !== undefined) {
        const n = thrown.get(m.crash) ?? 0;
        if (n < (m.times ?? 1)) {
          thrown.set(m.crash, n + 1);
          throw new Error(`kid crash ${m.crash} #${n + 1}`);
        }
      }
      return { ...state, handled: state.handled + 1 };
    },
  });
  const boss = defineActor<Counted>({
    name: 'boss',
    initialState: () => ({ activations: 0, handled: 0 }),
    supervision,
    onActivate: countActivation,
    handle(state, message, ctx) {
      const m = message as { get?: true; spawn?: string[] };
      if (m.get) {
        ctx.reply(state);
        return state;
      }
      for (const id of m.spawn ?? []) ctx.spawn(ref('kid', id));
      ctx.reply('ok');
      return { ...state, handled: state.handled + 1 };
    },
  });
  return { types: [boss, kid], thrown };
}

const boss = ref('boss', 'b');
const kids = ['k1', 'k2', 'k3'].map((id) => ref('kid', id));

/** Opens a node, spawns k1, k2, k3 (in that order) through the boss and waits until they exist. */
async function withFamily(supervision: Partial<SupervisionOptions>): Promise<TestNode> {
  const { types } = family(supervision);
  const node = await nodes.node(types, { options: { idleMs: 0 } });
  await node.system.ask(boss, { spawn: kids.map((k) => k.id) });
  await waitFor(
    async () => {
      for (const k of kids) if ((await node.store.get(keys.registry(k))) === undefined) return false;
      return (await node.store.scanKeys(`${keys.actor(boss)}o\x00`)).length === 0;
    },
    { what: 'the kids to be spawned' },
  );
  return node;
}

/** Waits, moving the fake clock through restart backoffs, until every actor is active with an empty mailbox. */
async function allSettled(node: TestNode, refs: ActorRef[]): Promise<void> {
  await waitFor(
    async () => {
      for (const r of refs) {
        const d = await node.system.describe(r);
        if (d.status !== 'active' || d.mailboxDepth > 0) return false;
      }
      return true;
    },
    { step: () => node.clock.advance(5), what: `${refs.map((r) => r.id).join(', ')} to be active and idle` },
  );
}

async function restarts(node: TestNode, refs: ActorRef[]): Promise<number[]> {
  return Promise.all(refs.map(async (r) => (await node.system.describe(r)).restarts));
}

async function activations(node: TestNode, refs: ActorRef[]): Promise<number[]> {
  return Promise.all(refs.map(async (r) => (await node.system.ask<Counted>(r, { get: true })).activations));
}

describe('supervision strategies', () => {
  it.each<[SupervisionStrategy, number[]]>([
    ['one_for_one', [0, 1, 0]],
    ['one_for_all', [1, 1, 1]],
    ['rest_for_one', [0, 1, 1]],
  ])('%s: a crash of k2 restarts kids %j', async (strategy, expected) => {
    const node = await withFamily({ strategy });
    expect(await activations(node, kids)).toEqual([1, 1, 1]);
    await node.system.tell(kids[1]!, { crash: 'c' });
    await allSettled(node, [boss, ...kids]);
    expect(await restarts(node, kids)).toEqual(expected);
    expect(await activations(node, kids)).toEqual(expected.map((n) => 1 + n));
    // The message that crashed was retried after the restart and handled once.
    expect((await node.system.ask<Counted>(kids[1]!, { get: true })).handled).toBe(1);
    // The supervisor itself did not restart.
    expect(await restarts(node, [boss])).toEqual([0]);
    expect(await activations(node, [boss])).toEqual([1]);
  });
});

describe('restart intensity', () => {
  it('escalates to the parent past its intensity, and the parent restarts with its children', async () => {
    const node = await withFamily({ strategy: 'one_for_one', maxRestarts: 1, withinMs: 60_000 });
    // Two crashes in a row: the first is within the boss's intensity, the second is not.
    await node.system.tell(kids[0]!, { crash: 'twice', times: 2 });
    await allSettled(node, [boss, ...kids]);
    expect(await restarts(node, [boss])).toEqual([1]);
    expect(await activations(node, [boss])).toEqual([2]);
    // k1: its own restart, then again with the boss's tree; k2 and k3 only with the tree.
    expect(await restarts(node, kids)).toEqual([2, 1, 1]);
    expect((await node.system.ask<Counted>(kids[0]!, { get: true })).handled).toBe(1);
  });

  it('marks a top-level actor failed past the root intensity, keeps its mail, and retries later', async () => {
    const control = { broken: true, throws: 0 };
    const fragile = defineActor<{ handled: number }>({
      name: 'fragile',
      initialState: () => ({ handled: 0 }),
      supervision: { maxRestarts: 2, withinMs: 60_000, maxAttempts: 100 },
      handle(state, message, ctx) {
        if ((message as { get?: true }).get) {
          ctx.reply(state);
          return state;
        }
        if (control.broken) {
          control.throws++;
          throw new Error('still broken');
        }
        return { handled: state.handled + 1 };
      },
    });
    const node = await nodes.node([fragile], { options: { idleMs: 0, failedRetryMs: 1_000 } });
    const f = ref('fragile', 'f');
    await node.system.tell(f, { work: 1 });
    await waitFor(async () => (await node.system.describe(f)).status === 'failed', {
      step: () => node.clock.advance(5),
      what: 'fragile/f to be marked failed',
    });
    // Two restarts were allowed; the third crash exceeded the intensity.
    expect(control.throws).toBe(3);
    const failed = await node.system.describe(f);
    expect(failed.restarts).toBe(2);
    expect(failed.mailboxDepth).toBe(1);
    expect(await node.system.deadLetters(f)).toEqual([]);
    // While failed it takes no turn, however long.
    node.clock.advance(999);
    expect(control.throws).toBe(3);
    // After failedRetryMs it is restarted and handles its mail once the fault is gone.
    control.broken = false;
    node.clock.advance(1);
    await allSettled(node, [f]);
    expect((await node.system.ask<{ handled: number }>(f, { get: true })).handled).toBe(1);
  });
});

describe('supervisor rules', () => {
  const children = ['a', 'b', 'c', 'd'];

  it('restartSet picks the failed child, all children, or the failed one and those after it', () => {
    expect(restartSet('one_for_one', children, 'b')).toEqual(['b']);
    expect(restartSet('one_for_all', children, 'b')).toEqual(['a', 'b', 'c', 'd']);
    expect(restartSet('rest_for_one', children, 'b')).toEqual(['b', 'c', 'd']);
    expect(restartSet('rest_for_one', children, 'd')).toEqual(['d']);
    // A child the supervisor does not list restarts alone.
    expect(restartSet('one_for_all', children, 'x')).toEqual(['x']);
  });

  it('RestartIntensity allows maxRestarts within withinMs and forgets restarts older than that', () => {
    const intensity = new RestartIntensity(2, 1_000);
    expect(intensity.allow(0)).toBe(true);
    expect(intensity.allow(500)).toBe(true);
    expect(intensity.allow(999)).toBe(false);
    // At 1500 the restarts at 0 and 500 are out of the window; 999 and 1500 remain.
    expect(intensity.allow(1_500)).toBe(true);
    expect(intensity.allow(1_600)).toBe(false);
    expect(intensity.allow(5_000)).toBe(true);
  });
});
