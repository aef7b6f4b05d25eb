import { describe, expect, it } from 'vitest';
import { counter } from '../../../src/actors/counter.js';
import { InvalidArgumentError, NotFoundError } from '../../../src/errors.js';
import { keys } from '../../../src/runtime/store.js';
import { ref } from '../../support/actors.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';

const nodes = useTestNodes();

const c = ref('counter', 'v');

/** Nothing of the actor is stored, nothing is loaded, and no write reached LevelDB. */
async function expectUntouched(node: TestNode, opsBefore: number): Promise<void> {
  expect(await node.store.scanKeys(keys.actor(c))).toEqual([]);
  expect(await node.store.get(keys.registry(c))).toBeUndefined();
  expect(await node.store.get(keys.awake(c))).toBeUndefined();
  expect(node.store.committer.opsWritten).toBe(opsBefore);
  expect(node.system.isLoaded(c)).toBe(false);
  expect((await node.system.describe(c)).status).toBe('inactive');
}

describe('counter message validation', () => {
  it.each<[string, unknown, RegExp]>([
    ['a non-numeric add', { add: 'one' }, /"add" must be a finite number/],
    ['an infinite add', { add: Number.POSITIVE_INFINITY }, /"add" must be a finite number/],
    ['a NaN add', { add: Number.NaN }, /"add" must be a finite number/],
    ['get that is not true', { get: 1 }, /"get" must be true/],
    ['an unknown field', { sub: 1 }, /counter accepts/],
    ['two fields', { add: 1, get: true }, /counter accepts/],
    ['an empty object', {}, /counter accepts/],
    ['an array', [{ add: 1 }], /counter accepts/],
    ['null', null, /counter accepts/],
    ['a string', 'add 1', /counter accepts/],
  ])('rejects %s with InvalidArgumentError and enqueues nothing', async (_, message, reason) => {
    const node = await nodes.node([counter]);
    const opsBefore = node.store.committer.opsWritten;
    const err = await node.system.tell(c, message).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/^message rejected by counter: /);
    expect((err as Error).message).toMatch(reason);
    await expect(node.system.ask(c, message)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expectUntouched(node, opsBefore);
  });

  it('rejects a bad message to a live counter without changing it', async () => {
    const node = await nodes.node([counter]);
    await node.system.spawn(c, { value: 3 });
    await node.system.tell(c, { add: 1 });
    const before = await node.system.ask(c, { get: true });
    await expect(node.system.tell(c, { add: '1' })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await node.system.describe(c)).mailboxDepth).toBe(0);
    expect(await node.system.ask(c, { get: true })).toEqual(before);
    expect(before).toEqual({ value: 4, count: 1 });
  });

  it.each<[string, unknown]>([
    ['a non-object init', 5],
    ['an unknown init field', { value: 1, extra: true }],
    ['a non-finite init value', { value: Number.NaN }],
  ])('refuses to spawn with %s and stores nothing', async (_, init) => {
    const node = await nodes.node([counter]);
    const opsBefore = node.store.committer.opsWritten;
    await expect(node.system.spawn(c, init)).rejects.toThrow(InvalidArgumentError);
    await expect(node.system.spawn(c, init)).rejects.toThrow(/^init rejected by counter: /);
    await expectUntouched(node, opsBefore);
  });

  it('answers NotFoundError for an unregistered type, naming the known ones', async () => {
    const node = await nodes.node([counter]);
    await expect(node.system.tell(ref('nosuch', 'x'), { add: 1 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(node.system.tell(ref('nosuch', 'x'), { add: 1 })).rejects.toThrow(/known: counter/);
  });

  it('accepts the messages the counter documents', async () => {
    const node = await nodes.node([counter]);
    await node.system.tell(c, { add: 2.5 });
    await node.system.tell(c, { add: -1 });
    expect(await node.system.ask(c, { get: true })).toEqual({ value: 1.5, count: 2 });
  });
});
