/**
 * The pump alone, over the real stream actor on a real store, with an in-process engine (the
 * window-average module, no worker thread) and an ActorService that records every stream call the
 * pump makes, in the order they start and finish, and can lose acks. These check the pipelining
 * of pump.ts: the next batch's read in flight while a batch is handled, a single input's publish
 * and ack overlapping the next batches, the batches processed meanwhile published together and
 * their acks coalesced, and exactly-once outputs through a stop that lost acks.
 */
import { describe, expect, it } from 'vitest';
import { Pump } from '../../../../src/actors/ee-agent/pump.js';
import { EE_AGENT_TEST_PRESET } from '../../../../src/actors/ee-agent/options.js';
import type { TransformConfig } from '../../../../src/actors/ee-agent/protocol.js';
import { askRole } from '../../../../src/actors/role-reply.js';
import { stream, type StreamDescription } from '../../../../src/actors/stream.js';
import type { Engine, EngineExit, EngineInput, EngineOutput } from '../../../../src/engines/engine.js';
import { ProcessLog } from '../../../../src/engines/process-log.js';
import { UnavailableError } from '../../../../src/errors.js';
import type { ActorService } from '../../../../src/runtime/actor-service.js';
import type { ActorRef } from '../../../../src/runtime/ref.js';
import createWindowAverage from '../../../../src/transforms/window-average.js';
import { useTestNodes, type TestNode } from '../../../support/runtime-node.js';
import { waitFor } from '../../../support/wait.js';

const nodes = useTestNodes();
const WINDOW = 5;
const COUNT = 40;
const readings = Array.from({ length: COUNT }, (_, i) => ({ time: i * 0.75, value: Math.sin(i) * 10 + i }));
/** The uninterrupted computation the pumped one must equal. */
const reference = (): unknown[] =>
  createWindowAverage({ window: WINDOW })
    .process(readings.map((data, offset) => ({ stream: 'in', offset, time: 0, data })))
    .map((o) => o.data);

/** The window-average module run in this thread, as an Engine. */
class InProcessEngine implements Engine {
  readonly log = new ProcessLog();
  readonly exited = new Promise<EngineExit>(() => undefined);
  private module: ReturnType<typeof createWindowAverage> | undefined;

  constructor(private readonly onProcess: (batch: EngineInput[]) => void = () => undefined) {}

  async start(config: unknown, checkpoint: unknown): Promise<void> {
    this.module = createWindowAverage(config as { window: number }, checkpoint as never);
  }
  async process(batch: EngineInput[]): Promise<EngineOutput[]> {
    this.onProcess(batch);
    return this.module!.process(batch);
  }
  async snapshot(): Promise<unknown> {
    return JSON.parse(JSON.stringify(this.module!.snapshot())) as unknown;
  }
  async stop(): Promise<EngineExit> {
    return { code: 0, signal: null };
  }
}

interface Call {
  op: 'read' | 'publish' | 'ack' | 'other' | 'process';
  stream: string;
  /** read: `from`; publish: `seq`; ack: `offset`; process (by the engine, see InProcessEngine): the batch's first offset. */
  at: number | undefined;
  event: 'start' | 'end';
}

/**
 * The node's ActorSystem, recording each call; `loseAcksFrom(offset)` makes every ack of that offset
 * or later fail without reaching the stream; `holdPublish(seq, until)` keeps that publish from
 * reaching the stream until `until`.
 */
function recordingService(node: TestNode): { service: ActorService; calls: Call[]; loseAcksFrom(offset: number): void; holdPublish(seq: number, until: Promise<unknown>): void } {
  const calls: Call[] = [];
  let lostFrom = Number.POSITIVE_INFINITY;
  const held = new Map<number, Promise<unknown>>();
  const service = {
    async ask<T>(ref: ActorRef, payload: unknown, timeoutMs?: number): Promise<T> {
      const m = payload as { read?: { from?: number }; publish?: { seq?: number }; ack?: { offset: number } };
      const op = m.read ? 'read' : m.publish ? 'publish' : m.ack ? 'ack' : 'other';
      const at = m.read?.from ?? m.publish?.seq ?? m.ack?.offset;
      calls.push({ op, stream: ref.id, at, event: 'start' });
      if (m.ack && m.ack.offset >= lostFrom) throw new UnavailableError('ack lost (test)');
      if (m.publish?.seq !== undefined) await held.get(m.publish.seq);
      const reply = await node.system.ask<T>(ref, payload, timeoutMs);
      calls.push({ op, stream: ref.id, at, event: 'end' });
      return reply;
    },
  } as unknown as ActorService;
  return { service, calls, loseAcksFrom: (offset) => (lostFrom = offset), holdPublish: (seq, until) => held.set(seq, until) };
}

function pumpOn(node: TestNode, service: ActorService, config: TransformConfig, engine = new InProcessEngine()): Pump {
  return new Pump('t', config, engine, { window: WINDOW }, {
    service: () => service,
    clock: node.clock,
    options: EE_AGENT_TEST_PRESET.pump,
    onBatchError: () => undefined,
    onFatal: (error) => {
      throw new Error(`pump failed: ${error}`);
    },
  });
}

const S = (id: string): ActorRef => ({ type: 'stream', id });

async function outputs(node: TestNode): Promise<unknown[]> {
  await askRole(node.system, S('out'), { subscribe: { subscription: 'check', from: 'earliest' } });
  const r = await askRole<{ messages: Array<{ data: unknown }> }>(node.system, S('out'), { read: { subscription: 'check', max: 10_000 } });
  return r.messages.map((m) => m.data);
}

async function untilConsumed(node: TestNode, count: number): Promise<void> {
  await waitFor(
    async () => (await askRole<StreamDescription>(node.system, S('in'), { describe: true })).subscriptions.find((s) => s.name === 't')?.cursor === count,
    { step: () => node.clock.advance(5), what: `t consumed ${count} inputs`, timeoutMs: 20_000 },
  );
}

/** Pumps the readings, all published first, in batches of 8 to the end; returns the calls it made. */
async function pumpBacklog(): Promise<Call[]> {
  const node = await nodes.node([stream]);
  await askRole(node.system, S('in'), { publish: { messages: readings.map((data) => ({ data })) } });
  const { service, calls } = recordingService(node);
  const pump = pumpOn(node, service, { inputs: ['in'], output: 'out', batch: 8 });
  await pump.start();
  await untilConsumed(node, COUNT);
  await pump.stop();
  expect(await outputs(node)).toEqual(reference());
  return calls;
}

describe('pump pipelining', () => {
  it('reads the next batch while a batch is handled, publishes each batch before its ack, and acks in order', async () => {
    const calls = await pumpBacklog();

    const index = (op: Call['op'], at: number, event: Call['event']): number => calls.findIndex((c) => c.op === op && c.at === at && c.event === event);
    const ends = (op: Call['op']): number[] => calls.filter((c) => c.op === op && c.event === 'end').map((c) => c.at!);
    // The read of each batch after the first was sent before the batch before it was published.
    for (const last of [7, 15, 23, 31]) {
      expect(index('read', last + 1, 'start')).toBeGreaterThanOrEqual(0);
      expect(index('read', last + 1, 'start')).toBeLessThan(Math.max(...calls.filter((c) => c.op === 'publish' && c.at! >= last).map((c) => index('publish', c.at!, 'start'))));
    }
    // Every publish and every ack ends a batch; the last of each covers the last batch.
    const batchEnds = [7, 15, 23, 31, 39];
    expect(ends('publish').every((at) => batchEnds.includes(at))).toBe(true);
    expect(ends('ack').every((at) => batchEnds.includes(at))).toBe(true);
    expect(ends('publish').at(-1)).toBe(39);
    expect(ends('ack').at(-1)).toBe(39);
    // A batch's ack starts only after a publish that covers it ended.
    for (const at of ends('ack')) {
      const covered = calls.findIndex((c) => c.op === 'publish' && c.event === 'end' && c.at! >= at);
      expect(covered).toBeGreaterThanOrEqual(0);
      expect(covered).toBeLessThan(index('ack', at, 'start'));
    }
    // Acks go out in order, one at a time.
    const acks = calls.filter((c) => c.op === 'ack');
    for (let i = 0; i < acks.length; i += 2) expect(acks[i + 1]).toEqual({ ...acks[i]!, event: 'end' });
    expect(ends('ack')).toEqual([...ends('ack')].sort((x, y) => x - y));
  });

  it('keeps several reads in flight while its reads come back full', async () => {
    const calls = await pumpBacklog();
    const index = (at: number, event: Call['event']): number => calls.findIndex((c) => c.op === 'read' && c.at === at && c.event === event);
    // The backlog is read three batches at a time, not one round trip after another.
    expect(index(16, 'start')).toBeGreaterThanOrEqual(0);
    expect(index(16, 'start')).toBeLessThan(index(8, 'end'));
    expect(index(24, 'start')).toBeLessThan(index(8, 'end'));
  });

  it('processes the next batch while a batch is being published', async () => {
    const node = await nodes.node([stream]);
    await askRole(node.system, S('in'), { publish: { messages: readings.map((data) => ({ data })) } });
    const { service, calls, holdPublish } = recordingService(node);
    let fifthProcessing!: () => void;
    const fifth = new Promise<void>((resolve) => (fifthProcessing = resolve));
    // The first batch's publish is held until the fifth batch is processed; a pump that waits for
    // the publish first gets it after the real-time fallback, too late for the checks below.
    holdPublish(7, Promise.race([fifth, new Promise((resolve) => setTimeout(resolve, 1_000))]));
    const engine = new InProcessEngine((batch) => {
      calls.push({ op: 'process', stream: 'in', at: batch[0]!.offset, event: 'start' });
      if (batch[0]!.offset === 32) fifthProcessing();
    });
    const pump = pumpOn(node, service, { inputs: ['in'], output: 'out', batch: 8 }, engine);
    await pump.start();
    await untilConsumed(node, COUNT);
    await pump.stop();
    expect(await outputs(node)).toEqual(reference());
    const publishedFirst = calls.findIndex((c) => c.op === 'publish' && c.at === 7 && c.event === 'end');
    expect(publishedFirst).toBeGreaterThanOrEqual(0);
    // When the first publish ended, the second batch had been processed already.
    const processedSecond = calls.findIndex((c) => c.op === 'process' && c.at === 8);
    expect(processedSecond).toBeGreaterThanOrEqual(0);
    expect(processedSecond).toBeLessThan(publishedFirst);
    // Publishes stay one at a time, in seq order; the three or four batches processed while the first
    // publish was held went out together, as one publish with the last one's offset as its seq.
    const publishes = calls.filter((c) => c.op === 'publish');
    for (let i = 0; i < publishes.length; i += 2) {
      expect(publishes[i]!.event).toBe('start');
      expect(publishes[i + 1]).toEqual({ ...publishes[i]!, event: 'end' });
    }
    const seqs = publishes.filter((c) => c.event === 'end').map((c) => c.at!);
    expect(seqs[0]).toBe(7);
    expect(seqs[1]).toBeGreaterThanOrEqual(31);
    expect(seqs.at(-1)).toBe(39);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it('publishes each output once through a stop after acks were lost with later batches already published', async () => {
    const node = await nodes.node([stream]);
    await askRole(node.system, S('in'), { publish: { messages: readings.map((data) => ({ data })) } });
    const first = recordingService(node);
    // No ack after the first batch's arrives: the third batch is published meanwhile.
    first.loseAcksFrom(8);
    const pump = pumpOn(node, first.service, { inputs: ['in'], output: 'out', batch: 8 });
    await pump.start();
    await waitFor(() => first.calls.some((c) => c.op === 'publish' && c.at! >= 23 && c.event === 'end'), {
      step: () => node.clock.advance(5),
      what: 'the third batch published',
      timeoutMs: 20_000,
    });
    const stopping = pump.stop();
    node.clock.advance(1_000);
    await stopping;
    const d = await askRole<StreamDescription>(node.system, S('in'), { describe: true });
    expect(d.subscriptions.find((s) => s.name === 't')?.cursor).toBe(8);
    const published = (await askRole<StreamDescription>(node.system, S('out'), { describe: true })).producers.t!;
    expect(published).toBeGreaterThanOrEqual(23);

    // A new run rebuilds 8..published without publishing them again, then goes on.
    const second = recordingService(node);
    const again = pumpOn(node, second.service, { inputs: ['in'], output: 'out', batch: 8 });
    await again.start();
    await untilConsumed(node, COUNT);
    await again.stop();
    expect(await outputs(node)).toEqual(reference());
    expect(second.calls.filter((c) => c.op === 'publish' && c.event === 'start' && (c.at ?? 0) <= published)).toEqual([]);
  });
});
