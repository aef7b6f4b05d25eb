import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import { DedupWindow } from '../../../src/runtime/dedup-window.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';

const nodes = useTestNodes();

const get = { get: true } as const;

describe('idempotent sends (message_id)', () => {
  it('acknowledges a repeated message id with the original seq and handles it once', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'dedup');
    const first = await node.system.tell(a, { n: 1 }, { messageId: 'm-1' });
    await node.system.tell(a, { n: 2 });
    const repeat = await node.system.tell(a, { n: 'different payload, same id' }, { messageId: 'm-1' });
    expect(first).toEqual({ seq: 1, messageId: 'm-1', duplicate: false });
    expect(repeat).toEqual({ seq: 1, messageId: 'm-1', duplicate: true });
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('deduplicates copies sent concurrently, before the first is durable', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'burst');
    const acks = await Promise.all(Array.from({ length: 10 }, () => node.system.tell(a, { once: true }, { messageId: 'same' })));
    expect(new Set(acks.map((ack) => ack.seq))).toEqual(new Set([1]));
    expect(acks.filter((ack) => !ack.duplicate)).toHaveLength(1);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ once: true }]);
  });

  it('keeps ids per actor: the same id to another actor is a new message', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'a');
    const b = ref('recorder', 'b');
    await node.system.tell(a, { x: 1 }, { messageId: 'shared' });
    const toB = await node.system.tell(b, { x: 1 }, { messageId: 'shared' });
    expect(toB.duplicate).toBe(false);
    expect((await node.system.ask<RecorderState>(b, get)).log).toEqual([{ x: 1 }]);
  });

  it('still recognises an id after the store is reopened', async () => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'reopen');
    await node.system.tell(a, { n: 1 }, { messageId: 'keep-me' });
    await node.system.tell(a, { n: 2 }, { messageId: 'and-me' });
    await node.system.ask(a, get);
    await node.restart();
    const repeat = await node.system.tell(a, { n: 1 }, { messageId: 'keep-me' });
    expect(repeat).toEqual({ seq: 1, messageId: 'keep-me', duplicate: true });
    expect((await node.system.tell(a, { n: 2 }, { messageId: 'and-me' })).seq).toBe(2);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('forgets the oldest ids past dedupMaxIds, in memory and in the store', async () => {
    const node = await nodes.node([recorder], { options: { dedupMaxIds: 3 } });
    const a = ref('recorder', 'bounded');
    for (const id of ['i1', 'i2', 'i3', 'i4', 'i5']) await node.system.tell(a, { id }, { messageId: id });
    // i1 and i2 fell out of the window; i3..i5 are remembered.
    expect((await node.system.tell(a, { id: 'i5' }, { messageId: 'i5' })).duplicate).toBe(true);
    const again = await node.system.tell(a, { id: 'i1 again' }, { messageId: 'i1' });
    expect(again).toEqual({ seq: 6, messageId: 'i1', duplicate: false });
    const stored = await node.store.scanKeys(`${keys.actor(a)}d\x00`);
    expect(stored.map((k) => k.slice(k.lastIndexOf('\x00') + 1)).sort()).toEqual(['i1', 'i4', 'i5']);
    // The bound holds across a reopen too: i3 was evicted by i1's return.
    await node.restart();
    expect((await node.system.tell(a, { id: 'i3 again' }, { messageId: 'i3' })).duplicate).toBe(false);
    expect((await node.system.tell(a, { id: 'i1' }, { messageId: 'i1' })).duplicate).toBe(false);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log.map((m) => (m as { id: string }).id)).toEqual(['i1', 'i2', 'i3', 'i4', 'i5', 'i1 again', 'i3 again', 'i1']);
  });

  it('forgets ids older than dedupWindowMs on the runtime clock', async () => {
    const node = await nodes.node([recorder], { options: { dedupWindowMs: 1_000 } });
    const a = ref('recorder', 'windowed');
    await node.system.tell(a, { n: 1 }, { messageId: 'w' });
    node.clock.advance(999);
    expect((await node.system.tell(a, { n: 'dup' }, { messageId: 'w' })).duplicate).toBe(true);
    node.clock.advance(1);
    const late = await node.system.tell(a, { n: 2 }, { messageId: 'w' });
    expect(late).toEqual({ seq: 2, messageId: 'w', duplicate: false });
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('drops ids that expired while the node was down when the actor loads again', async () => {
    const node = await nodes.node([recorder], { options: { dedupWindowMs: 1_000 } });
    const a = ref('recorder', 'expired');
    await node.system.tell(a, { n: 1 }, { messageId: 'old' });
    node.clock.advance(500);
    await node.system.tell(a, { n: 2 }, { messageId: 'young' });
    await node.system.ask(a, get);
    await node.stop();
    node.clock.advance(600);
    await node.start();
    expect((await node.system.tell(a, { n: 3 }, { messageId: 'old' })).duplicate).toBe(false);
    expect((await node.system.tell(a, { n: 'dup' }, { messageId: 'young' })).duplicate).toBe(true);
    const stored = await node.store.scanKeys(`${keys.actor(a)}d\x00`);
    expect(stored.map((k) => k.slice(k.lastIndexOf('\x00') + 1)).sort()).toEqual(['old', 'young']);
    const state = await node.system.ask<RecorderState>(a, get);
    expect(state.log).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it.each<[string, unknown]>([
    ['a non-string id', 42],
    ['an id over 256 bytes', 'x'.repeat(257)],
    ['an id with a NUL', 'a\x00b'],
  ])('rejects %s with InvalidArgumentError and enqueues nothing', async (_, messageId) => {
    const node = await nodes.node([recorder]);
    const a = ref('recorder', 'bad-id');
    await expect(node.system.tell(a, { n: 1 }, { messageId: messageId as string })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await node.store.scanKeys(keys.actor(a))).toEqual([]);
  });
});

describe('DedupWindow', () => {
  it('evicts by count, oldest first, and reports what it evicted', () => {
    const w = new DedupWindow(60_000, 2);
    expect(w.add('a', { seq: 1, at: 0 }, 0)).toEqual([]);
    expect(w.add('b', { seq: 2, at: 1 }, 1)).toEqual([]);
    expect(w.add('c', { seq: 3, at: 2 }, 2)).toEqual(['a']);
    expect(w.size).toBe(2);
    expect(w.lookup('a', 2)).toBeUndefined();
    expect(w.lookup('b', 2)?.seq).toBe(2);
  });

  it('treats an entry as gone once windowMs has passed, and evicts it on the next add', () => {
    const w = new DedupWindow(100, 10);
    w.add('a', { seq: 1, at: 0 }, 0);
    w.add('b', { seq: 2, at: 50 }, 50);
    expect(w.lookup('a', 99)?.seq).toBe(1);
    expect(w.lookup('a', 100)).toBeUndefined();
    expect(w.add('c', { seq: 3, at: 120 }, 120)).toEqual(['a']);
    expect(w.add('d', { seq: 4, at: 200 }, 200)).toEqual(['b']);
    expect(w.size).toBe(2);
    expect(w.lookup('c', 219)?.seq).toBe(3);
    expect(w.lookup('c', 220)).toBeUndefined();
  });
});
