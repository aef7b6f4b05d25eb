import { performance } from 'node:perf_hooks';
import type { Durability } from '../../src/runtime/actor-type.js';
import type { ActorRef } from '../../src/runtime/ref.js';
import { ActorSystem } from '../../src/runtime/runtime.js';
import { Store } from '../../src/runtime/store.js';
import { runClosedLoop, runCounted } from '../support/closed-loop.js';
import { summarize, type LatencySummary } from '../support/percentiles.js';
import { ProbeSink, probeType } from './probe-actor.js';

/** How long handlers may take to catch up with the last acknowledged tell before the run fails. */
const SETTLE_DEADLINE_MS = 60_000;

export interface LoadResult {
  /** Messages handled per second within the window. */
  rate: number;
  /** Tells acknowledged per second within the window. */
  ackedRate: number;
  /** Enqueue (the tell call) to handled (the handler ran), for messages handled within the window. */
  latency: LatencySummary;
  /** Enqueue to acknowledgement (the message durable), for tells acknowledged within the window. */
  ackLatency: LatencySummary;
  windowMs: number;
  /** Tells acknowledged in all (warmup and drain included); every one was handled before returning. */
  sent: number;
  /** Group-commit batches and the ops in them, over the whole run. */
  batches: number;
  opsWritten: number;
}

export interface CountResult {
  count: number;
  elapsedMs: number;
  rate: number;
  /** Actors in memory at the end. */
  loaded: number;
}

interface ProbeSystem {
  system: ActorSystem;
  store: Store;
  sink: ProbeSink;
  ref(id: string): ActorRef;
}

/** An actor system on a fresh store in `dir` with one probe type of `durability`, closed after `fn`. */
async function withProbeSystem<T>(dir: string, durability: Durability, fn: (p: ProbeSystem) => Promise<T>): Promise<T> {
  const store = await Store.open(dir);
  const sink = new ProbeSink();
  const type = probeType(`bench-probe-${durability}`, durability, sink);
  const system = new ActorSystem({ store, types: [type] });
  try {
    return await fn({ system, store, sink, ref: (id) => ({ type: type.name, id }) });
  } finally {
    await system.shutdown();
    await store.close();
  }
}

/**
 * Tells through ActorSystem.tell from `concurrency` senders, each awaiting its tell's acknowledgement
 * before the next, spread round robin over `actors` actors. Counts the messages handled in the window
 * and their enqueue-to-handled latency, then waits until every acknowledged tell was handled.
 */
export function tellsUnderLoad(
  dir: string,
  opts: { durability: Durability; actors: number; concurrency: number; warmupMs: number; durationMs: number },
): Promise<LoadResult> {
  return withProbeSystem(dir, opts.durability, async ({ system, store, sink, ref }) => {
    const refs = Array.from({ length: opts.actors }, (_, i) => ref(`a${i}`));
    const loop = await runClosedLoop({
      concurrency: opts.concurrency,
      warmupMs: opts.warmupMs,
      durationMs: opts.durationMs,
      onWindow: (from, until) => sink.setWindow(from, until),
      op: (i) => system.tell(refs[i % refs.length]!, { t: performance.now() }),
      latencies: true,
    });
    await sink.whenHandled(loop.started, SETTLE_DEADLINE_MS);
    if (sink.handled !== loop.started) throw new Error(`handlers saw ${sink.handled} messages; ${loop.started} tells were acknowledged`);
    return {
      rate: (sink.inWindow * 1000) / opts.durationMs,
      ackedRate: loop.rate,
      latency: summarize(sink.latencies),
      ackLatency: summarize(loop.latencies),
      windowMs: opts.durationMs,
      sent: loop.started,
      batches: store.committer.batches,
      opsWritten: store.committer.opsWritten,
    };
  });
}

/**
 * Memory-durability tells from a tight loop: `chunk` calls of system.tell without awaiting any, then
 * the chunk's promises together, repeated for `durationMs`; the clock stops when the handlers saw
 * every message. A warmup of `warmupCount` messages goes first.
 */
export function memoryTellsTightLoop(
  dir: string,
  opts: { actors: number; chunk: number; warmupCount: number; durationMs: number },
): Promise<{ rate: number; sent: number; elapsedMs: number }> {
  return withProbeSystem(dir, 'memory', async ({ system, sink, ref }) => {
    const refs = Array.from({ length: opts.actors }, (_, i) => ref(`a${i}`));
    let sent = 0;
    const sendChunk = async (): Promise<void> => {
      const acks: Array<Promise<unknown>> = new Array(opts.chunk);
      for (let i = 0; i < opts.chunk; i++, sent++) acks[i] = system.tell(refs[sent % refs.length]!, { t: performance.now() });
      await Promise.all(acks);
    };
    while (sent < opts.warmupCount) await sendChunk();
    await sink.whenHandled(sent, SETTLE_DEADLINE_MS);
    const before = sent;
    const begin = performance.now();
    while (performance.now() - begin < opts.durationMs) await sendChunk();
    await sink.whenHandled(sent, SETTLE_DEADLINE_MS);
    const elapsedMs = performance.now() - begin;
    if (sink.handled !== sent) throw new Error(`handlers saw ${sink.handled} messages, ${sent} were sent`);
    return { rate: ((sent - before) * 1000) / elapsedMs, sent: sent - before, elapsedMs };
  });
}

/**
 * Virtual activation: the first tell to each of `count` never-seen actor ids (durability sync), from
 * `concurrency` senders; timed until every one of those messages was handled.
 */
export function activations(dir: string, opts: { count: number; concurrency: number }): Promise<CountResult> {
  return withProbeSystem(dir, 'sync', async ({ system, sink, ref }) => {
    const result = await runCounted({
      concurrency: opts.concurrency,
      count: opts.count,
      op: (i) => system.tell(ref(`fresh-${i}`), { t: performance.now() }),
      settle: () => sink.whenHandled(opts.count, SETTLE_DEADLINE_MS),
    });
    if (sink.handled !== opts.count) throw new Error(`handlers saw ${sink.handled} messages; ${opts.count} tells were acknowledged`);
    return { ...result, loaded: system.loadedCount };
  });
}
