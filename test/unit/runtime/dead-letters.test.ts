import { describe, expect, it } from 'vitest';
import { defineActor, type SupervisionOptions } from '../../../src/runtime/actor-type.js';
import { ref } from '../../support/actors.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

interface PoisonState {
  handled: unknown[];
}

/**
 * A `poison` actor: `{poison: x}` throws while `control.broken`; everything else is recorded.
 * `control.throws` counts the throws, which live outside the actor's state.
 */
function poisonType(supervision?: Partial<SupervisionOptions>) {
  const control = { broken: true, throws: 0 };
  const type = defineActor<PoisonState>({
    name: 'poison',
    initialState: () => ({ handled: [] }),
    ...(supervision ? { supervision } : {}),
    handle(state, message, ctx) {
      const m = message as { get?: true; poison?: string };
      if (m.get) {
        ctx.reply(state);
        return state;
      }
      if (m.poison !== undefined && control.broken) {
        control.throws++;
        throw new Error(`cannot digest ${m.poison}`);
      }
      return { handled: [...state.handled, message] };
    },
  });
  return { type, control };
}

const a = ref('poison', 'p');

/**
 * Waits, moving the fake clock through restart backoffs, until the actor is active with an empty
 * mailbox and `deadLetters` dead letters written to the store.
 */
async function settled(node: TestNode, deadLetters: number): Promise<void> {
  await waitFor(
    async () => {
      const d = await node.system.describe(a);
      return d.status === 'active' && d.mailboxDepth === 0 && (await node.system.deadLetters(a)).length === deadLetters;
    },
    { step: () => node.clock.advance(5), what: `the actor to be active with an empty mailbox and ${deadLetters} dead letters` },
  );
}

describe('dead letters', () => {
  it('moves a message whose handler always throws to dead letters after 3 attempts, and goes on', async () => {
    const { type, control } = poisonType();
    const node = await nodes.node([type], { options: { idleMs: 0 } });
    await node.system.tell(a, { before: 1 });
    const poisoned = await node.system.tell(a, { poison: 'bone' });
    await node.system.tell(a, { after: 2 });
    await settled(node, 1);
    expect(control.throws).toBe(3);
    const letters = await node.system.deadLetters(a);
    expect(letters).toEqual([
      { seq: poisoned.seq, payload: { poison: 'bone' }, messageId: '', error: 'cannot digest bone', attempts: 3, at: expect.any(Number) },
    ]);
    const d = await node.system.describe(a);
    expect(d.deadLetters).toBe(1);
    expect(d.restarts).toBe(3);
    const state = await node.system.ask<PoisonState>(a, { get: true });
    expect(state.handled).toEqual([{ before: 1 }, { after: 2 }]);
  });

  it('takes maxAttempts from the type', async () => {
    const { type, control } = poisonType({ maxAttempts: 1 });
    const node = await nodes.node([type], { options: { idleMs: 0 } });
    await node.system.tell(a, { poison: 'once' }, { messageId: 'id-1' });
    await settled(node, 1);
    expect(control.throws).toBe(1);
    const [letter] = await node.system.deadLetters(a);
    expect(letter).toMatchObject({ attempts: 1, messageId: 'id-1', error: 'cannot digest once' });
  });

  it('rejects an ask whose message went to dead letters', async () => {
    const { type } = poisonType();
    const node = await nodes.node([type], { options: { idleMs: 0 } });
    let outcome: { error: unknown } | undefined;
    node.system.ask(a, { poison: 'asked' }).then(
      () => (outcome = { error: undefined }),
      (error: unknown) => (outcome = { error }),
    );
    await waitFor(() => outcome, { step: () => node.clock.advance(5), what: 'the ask to settle' });
    expect(outcome!.error).toBeInstanceOf(Error);
    expect((outcome!.error as Error).message).toMatch(/dead letters/);
    expect((outcome!.error as Error).message).toMatch(/cannot digest asked/);
  });

  it('retries a failing message from the last committed state, so a crash leaves no partial change', async () => {
    let failNext = true;
    const mutating = defineActor<PoisonState>({
      name: 'poison',
      initialState: () => ({ handled: [] }),
      handle(state, message, ctx) {
        if ((message as { get?: true }).get) {
          ctx.reply(state);
          return state;
        }
        // Changes the state in place before throwing: the change must not survive the crash.
        state.handled.push(message);
        if (failNext) {
          failNext = false;
          throw new Error('halfway');
        }
        return state;
      },
    });
    const node = await nodes.node([mutating], { options: { idleMs: 0 } });
    await node.system.tell(a, { n: 1 });
    await node.system.tell(a, { n: 2 });
    await settled(node, 0);
    expect(await node.system.deadLetters(a)).toEqual([]);
    expect((await node.system.ask<PoisonState>(a, { get: true })).handled).toEqual([{ n: 1 }, { n: 2 }]);
    expect((await node.system.describe(a)).restarts).toBe(1);
  });

  it('redrive() puts dead letters back into the mailbox', async () => {
    const { type, control } = poisonType();
    const node = await nodes.node([type], { options: { idleMs: 0 } });
    const first = await node.system.tell(a, { poison: 'one' });
    await node.system.tell(a, { poison: 'two' });
    await settled(node, 2);
    expect(await node.system.deadLetters(a)).toHaveLength(2);
    control.broken = false;
    expect(await node.system.redrive(a, [first.seq])).toBe(1);
    await settled(node, 1);
    expect((await node.system.ask<PoisonState>(a, { get: true })).handled).toEqual([{ poison: 'one' }]);
    expect((await node.system.deadLetters(a)).map((l) => l.payload)).toEqual([{ poison: 'two' }]);
    expect(await node.system.redrive(a)).toBe(1);
    await settled(node, 0);
    expect((await node.system.ask<PoisonState>(a, { get: true })).handled).toEqual([{ poison: 'one' }, { poison: 'two' }]);
    expect(await node.system.deadLetters(a)).toEqual([]);
    expect((await node.system.describe(a)).deadLetters).toBe(0);
  });

  it('keeps dead letters across a reopen of the store', async () => {
    const { type } = poisonType();
    const node = await nodes.node([type], { options: { idleMs: 0 } });
    await node.system.tell(a, { poison: 'kept' });
    await settled(node, 1);
    await node.restart();
    expect((await node.system.deadLetters(a)).map((l) => l.payload)).toEqual([{ poison: 'kept' }]);
    expect((await node.system.describe(a)).deadLetters).toBe(1);
  });
});
