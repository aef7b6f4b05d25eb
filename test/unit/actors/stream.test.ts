import { describe, expect, it } from 'vitest';
import { askRole } from '../../../src/actors/role-reply.js';
import { SEGMENT, stream, streamRef, type StreamDescription, type StreamEntry } from '../../../src/actors/stream.js';
import { CeiError } from '../../../src/errors.js';
import type { ActorSystem } from '../../../src/runtime/runtime.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder, ref, type RecorderState } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();
const S = streamRef('sensors');

type Read = { messages: StreamEntry[]; cursor: number; head: number };

const ask = <T>(system: ActorSystem, message: unknown) => askRole<T>(system, S, message);
const publish = (system: ActorSystem, values: number[], extra: Record<string, unknown> = {}) =>
  ask<{ first: number; last: number; duplicate: boolean }>(system, { publish: { messages: values.map((v) => ({ data: { v }, time: v })), ...extra } });
const read = (system: ActorSystem, subscription: string, max?: number) => ask<Read>(system, { read: { subscription, ...(max ? { max } : {}) } });
const values = (r: Read) => r.messages.map((m) => (m.data as { v: number }).v);

async function refusal(p: Promise<unknown>): Promise<CeiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CeiError);
    return err as CeiError;
  }
  throw new Error('expected a refusal');
}

describe('stream actor', () => {
  it('appends, reads from a subscription cursor, and moves the cursor only by acks, keeping the checkpoint with it', async () => {
    const { system } = await nodes.node([stream]);
    expect(await publish(system, [1, 2, 3])).toEqual({ first: 0, last: 2, duplicate: false });
    // A new subscription starts at the head by default; "earliest" at the oldest message kept.
    expect(await ask(system, { subscribe: { subscription: 'late' } })).toEqual({ cursor: 3, checkpoint: null });
    expect(await ask(system, { subscribe: { subscription: 'all', from: 'earliest' } })).toEqual({ cursor: 0, checkpoint: null });
    await publish(system, [4, 5]);
    expect(values(await read(system, 'all', 2))).toEqual([1, 2]);
    expect(values(await read(system, 'all', 2))).toEqual([1, 2]);
    expect(await ask(system, { ack: { subscription: 'all', offset: 1, checkpoint: { sum: 3 } } })).toEqual({ cursor: 2 });
    // An older ack (a retry) moves nothing back.
    expect(await ask(system, { ack: { subscription: 'all', offset: 0 } })).toEqual({ cursor: 2 });
    const r = await read(system, 'all');
    expect(values(r)).toEqual([3, 4, 5]);
    expect(r.messages.map((m) => m.offset)).toEqual([2, 3, 4]);
    expect(r.messages[0]!.time).toBe(3);
    expect(values(await read(system, 'late'))).toEqual([4, 5]);
    // Subscribing again is idempotent: it answers the cursor and checkpoint it had.
    expect(await ask(system, { subscribe: { subscription: 'all', from: 'earliest' } })).toEqual({ cursor: 2, checkpoint: { sum: 3 } });
    const d = await ask<StreamDescription>(system, { describe: true });
    expect(d.head).toBe(5);
    expect(Object.fromEntries(d.subscriptions.map((s) => [s.name, s.queueLength]))).toEqual({ late: 2, all: 3 });
  });

  it('keeps its log in segment records of SEGMENT messages, and everything across a restart of the node', async () => {
    const node = await nodes.node([stream]);
    await ask(node.system, { subscribe: { subscription: 'a', from: 'earliest' } });
    await publish(node.system, [10, 20, 30]);
    await ask(node.system, { ack: { subscription: 'a', offset: 0, checkpoint: 'cp' } });
    const stored = await node.store.scanKeys(keys.actor(S));
    expect(stored.filter((k) => k.includes('r\x00s'))).toHaveLength(1);
    expect(stored.filter((k) => k.includes('r\x00m'))).toHaveLength(0);
    // One publish across a segment's end writes the two segments it falls in.
    await publish(node.system, Array.from({ length: SEGMENT }, (_, i) => 100 + i));
    expect((await node.store.scanKeys(keys.actor(S))).filter((k) => k.includes('r\x00s'))).toHaveLength(2);
    expect(values(await read(node.system, 'a', 3 + SEGMENT))).toEqual([20, 30, ...Array.from({ length: SEGMENT }, (_, i) => 100 + i)]);
    await node.restart();
    expect(values(await read(node.system, 'a', 3 + SEGMENT))).toEqual([20, 30, ...Array.from({ length: SEGMENT }, (_, i) => 100 + i)]);
    expect(await ask(node.system, { subscribe: { subscription: 'a' } })).toEqual({ cursor: 1, checkpoint: 'cp' });
  });

  it('drops messages past its retention count and moves cursors that fell behind, counting what they missed', async () => {
    const node = await nodes.node([stream]);
    await ask(node.system, { configure: { retention: { maxCount: 3 } } });
    await ask(node.system, { subscribe: { subscription: 'slow', from: 'earliest' } });
    await publish(node.system, [1, 2, 3, 4, 5]);
    const d = await ask<StreamDescription>(node.system, { describe: true });
    expect([d.first, d.head]).toEqual([2, 5]);
    expect(d.subscriptions[0]).toMatchObject({ name: 'slow', cursor: 2, queueLength: 3, skipped: 2 });
    expect(values(await read(node.system, 'slow'))).toEqual([3, 4, 5]);
    // A segment's record goes once retention dropped all of it.
    await publish(node.system, Array.from({ length: SEGMENT }, (_, i) => 6 + i));
    const segments = (await node.store.scanKeys(keys.actor(S))).filter((k) => k.includes('r\x00s'));
    expect(segments.map((k) => k.slice(k.lastIndexOf('\x00') + 1))).toEqual(['s0000000001']);
    expect(values(await read(node.system, 'slow'))).toEqual([SEGMENT + 3, SEGMENT + 4, SEGMENT + 5]);
  });

  it('reads, extends and drops a log kept one record per message, as stores from before segments hold it', async () => {
    const node = await nodes.node([stream]);
    await ask(node.system, { configure: { retention: { maxCount: 3 } } });
    await ask(node.system, { subscribe: { subscription: 'a', from: 'earliest' } });
    await publish(node.system, [1, 2]);
    await node.stop();
    await node.start();
    // The same two messages as per-message records, the older layout.
    const record = (name: string) => keys.record(keys.actor(S), name);
    const segment = JSON.parse((await node.store.get(record('s0000000000')))!) as Array<{ t: number; d: unknown }>;
    await node.store.write(
      [
        { type: 'del', key: record('s0000000000') },
        { type: 'put', key: record('m000000000000'), value: JSON.stringify(segment[0]) },
        { type: 'put', key: record('m000000000001'), value: JSON.stringify(segment[1]) },
      ],
      true,
    );
    await node.restart();
    expect(values(await read(node.system, 'a'))).toEqual([1, 2]);
    await publish(node.system, [3, 4]);
    expect(values(await read(node.system, 'a'))).toEqual([2, 3, 4]);
    const left = (await node.store.scanKeys(keys.actor(S))).filter((k) => k.includes('r\x00m') || k.includes('r\x00s'));
    // Offset 0 fell out of retention: its own record went; offset 1's stays, beside the new segment.
    expect(left.map((k) => k.slice(k.lastIndexOf('\x00') + 1))).toEqual(['m000000000001', 's0000000000']);
  });

  it('drops messages older than its retention age, also while nothing is published', async () => {
    const node = await nodes.node([stream]);
    await ask(node.system, { configure: { retention: { maxAgeMs: 10_000 } } });
    await ask(node.system, { subscribe: { subscription: 'a', from: 'earliest' } });
    await ask(node.system, { publish: { messages: [{ data: 1 }, { data: 2 }] } });
    node.clock.advance(6_000);
    await ask(node.system, { publish: { messages: [{ data: 3 }] } });
    await waitFor(async () => (await ask<StreamDescription>(node.system, { describe: true })).first === 2, {
      step: () => node.clock.advance(1_000),
      what: 'the first two messages to expire',
    });
    expect((await read(node.system, 'a')).messages.map((m) => m.data)).toEqual([3]);
  });

  it('drops a producer publish whose seq is not above its high-water mark', async () => {
    const { system } = await nodes.node([stream]);
    expect(await ask(system, { producer: { name: 'avg' } })).toEqual({ seq: -1 });
    expect((await publish(system, [1, 2], { producer: 'avg', seq: 9 })).duplicate).toBe(false);
    expect(await publish(system, [1, 2], { producer: 'avg', seq: 9 })).toEqual({ first: -1, last: -1, duplicate: true });
    expect((await publish(system, [3], { producer: 'avg', seq: 12 })).last).toBe(2);
    expect(await ask(system, { producer: { name: 'avg' } })).toEqual({ seq: 12 });
    expect((await ask<StreamDescription>(system, { describe: true })).head).toBe(3);
  });

  it('pushes to a subscribing actor at most maxInFlight unacknowledged messages, and more after each ack', async () => {
    const { system } = await nodes.node([stream, recorder]);
    const sink = ref('recorder', 'sink');
    await ask(system, { subscribe: { subscription: 'push', from: 'earliest', deliverTo: 'recorder/sink', maxInFlight: 2 } });
    await publish(system, [1, 2, 3, 4, 5]);
    const delivered = async (): Promise<number[]> => {
      const log = (await system.ask<RecorderState>(sink, { get: true })).log as Array<{ stream: { messages: StreamEntry[] } }>;
      return log.flatMap((m) => m.stream.messages.map((e) => (e.data as { v: number }).v));
    };
    await waitFor(async () => (await delivered()).length === 2, { what: 'the first two pushed' });
    expect(await delivered()).toEqual([1, 2]);
    await ask(system, { ack: { subscription: 'push', offset: 1 } });
    await waitFor(async () => (await delivered()).length === 4, { what: 'two more pushed after the ack' });
    await ask(system, { ack: { subscription: 'push', offset: 3 } });
    await waitFor(async () => (await delivered()).length === 5, { what: 'the last one pushed' });
    expect(await delivered()).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses bad input with a reason and changes nothing', async () => {
    const { system } = await nodes.node([stream]);
    await publish(system, [1]);
    expect((await refusal(ask(system, { read: { subscription: 'nobody' } }))).code).toBe('NOT_FOUND');
    await ask(system, { subscribe: { subscription: 's', from: 'earliest' } });
    const beyond = await refusal(ask(system, { ack: { subscription: 's', offset: 5 } }));
    expect(beyond.code).toBe('FAILED_PRECONDITION');
    expect(beyond.message).toMatch(/ends at 0/);
    await expect(system.tell(S, { publish: { messages: [] } })).rejects.toThrow(/messages/);
    await expect(system.tell(S, { subscribe: { subscription: 'bad name!' } })).rejects.toThrow(/subscription/);
    const half = await refusal(ask(system, { publish: { messages: [{ data: 1 }], producer: 'p' } }));
    expect(half.code).toBe('FAILED_PRECONDITION');
    expect(half.message).toMatch(/producer and seq go together/);
    await expect(system.tell(S, { nonsense: true })).rejects.toThrow();
    const d = await ask<StreamDescription>(system, { describe: true });
    expect(d.head).toBe(1);
    expect(d.subscriptions.map((s) => [s.name, s.cursor])).toEqual([['s', 0]]);
  });
});
