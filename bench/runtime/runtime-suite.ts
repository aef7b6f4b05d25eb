import type { LatencySummary } from '../support/percentiles.js';
import type { Suite, BenchContext } from '../suite.js';
import { measure } from '../suite.js';
import { target, type Figure } from '../support/figure.js';
import { summarize } from '../support/percentiles.js';
import { distIsStale, ensureBuilt, startCeiNode, type CeiNodeProcess } from '../support/cei-node.js';
import { CeiClient } from '../../src/client.js';
import { rawSyncedBatches } from './raw-leveldb.js';
import { rawGrpcEcho } from './raw-grpc-echo.js';
import { activations, memoryTellsTightLoop, tellsUnderLoad } from './system-tells.js';
import { countersTotal, grpcAsks, grpcTellMany, grpcTells, grpcTellStream } from './grpc-node.js';

/** Sizes and durations of the runtime suite. Every measurement is bounded by a count or a time. */
export interface RuntimeBenchOptions {
  /** Uncounted lead-in of each timed measurement (ms). */
  warmupMs: number;
  /** Counted window of each timed measurement (ms). */
  windowMs: number;
  /** Puts per raw LevelDB batch (the figure is batches of 100). */
  rawBatchSize: number;
  /** Actors the durable, relaxed and memory tells are spread over. */
  actors: number;
  /**
   * Tells in flight (senders each awaiting its tell) for the durable and relaxed figures through the
   * runtime API. By Little's law enqueue-to-handled latency is about this over the rate, so this
   * trades latency for throughput; the default is one sender per actor.
   */
  systemInFlight: number;
  /** Memory tells are sent in chunks of this many un-awaited tell calls. */
  memoryChunk: number;
  memoryWarmupCount: number;
  /** Fresh actor ids told once each, and how many of those first tells are in flight. */
  activationCount: number;
  activationInFlight: number;
  /** gRPC calls in flight for the raw echo and Tell figures. */
  grpcInFlight: number;
  /** Counters the gRPC Tell and TellStream figures are spread over. */
  grpcActors: number;
  /** Unacknowledged tells the TellStream client keeps in flight. */
  streamWindow: number;
  /** Tells sent with src/client.ts tellMany (count-bounded: it takes its items up front). */
  tellManyCount: number;
}

export const RUNTIME_BENCH_DEFAULTS: RuntimeBenchOptions = {
  warmupMs: 1_000,
  windowMs: 4_000,
  rawBatchSize: 100,
  actors: 1_000,
  systemInFlight: 1_000,
  memoryChunk: 10_000,
  memoryWarmupCount: 200_000,
  activationCount: 50_000,
  activationInFlight: 1_000,
  grpcInFlight: 64,
  grpcActors: 1_000,
  streamWindow: 2_048,
  tellManyCount: 30_000,
};

/** A short run to check that the suite works, not to read figures from. */
export const RUNTIME_BENCH_QUICK: RuntimeBenchOptions = {
  ...RUNTIME_BENCH_DEFAULTS,
  warmupMs: 200,
  windowMs: 500,
  memoryWarmupCount: 20_000,
  activationCount: 5_000,
  tellManyCount: 3_000,
};

const SUITE = 'runtime';

/** `value / baseline.value` as a figure's ratio, when the baseline was measured. */
function ratioTo(baseline: Figure | undefined, name: string, value: number): Figure['ratio'] {
  if (!baseline || baseline.error !== undefined || !(baseline.value > 0)) return undefined;
  return { to: name, toKey: baseline.key, value: value / baseline.value };
}

function ratioTargets(ratio: Figure['ratio'], want: number, what: string): Figure['targets'] {
  return ratio ? [target(what, '>=', want, ratio.value)] : [];
}

async function runRuntime(ctx: BenchContext, o: RuntimeBenchOptions): Promise<void> {
  const timed = { warmupMs: o.warmupMs, durationMs: o.windowMs };

  const rawBatch = await measure(ctx, SUITE, 'raw_leveldb_synced_batch', `raw LevelDB synced batches of ${o.rawBatchSize}`, async () => {
    const r = await rawSyncedBatches(ctx.tmp.make('raw-leveldb'), { batchSize: o.rawBatchSize, ...timed });
    const batch = summarize(r.latencies);
    return { value: r.putsPerSec, unit: 'puts/s', p50Ms: batch.p50, p99Ms: batch.p99, count: r.puts, windowMs: r.windowMs, detail: { batchesPerSec: r.batchesPerSec, batchSize: o.rawBatchSize } };
  });

  const rawEcho = await measure(ctx, SUITE, 'raw_grpc_unary_echo', `raw grpc-js unary echo, ${o.grpcInFlight} in flight`, async () => {
    const r = await rawGrpcEcho({ concurrency: o.grpcInFlight, ...timed });
    const l = summarize(r.latencies);
    return { value: r.rate, unit: 'calls/s', p50Ms: l.p50, p99Ms: l.p99, count: r.ops, windowMs: r.windowMs, detail: { inFlight: o.grpcInFlight } };
  });

  let durableAck: LatencySummary | undefined;
  await measure(ctx, SUITE, 'durable_tells', `durable tells, ${o.actors} actors, ${o.systemInFlight} in flight`, async () => {
    const r = await tellsUnderLoad(ctx.tmp.make('durable'), { durability: 'sync', actors: o.actors, concurrency: o.systemInFlight, ...timed });
    durableAck = r.ackLatency;
    const ratio = ratioTo(rawBatch, 'raw batch', r.rate);
    return {
      value: r.rate,
      unit: 'msg/s',
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      count: r.latency.count,
      windowMs: r.windowMs,
      ratio,
      targets: [...ratioTargets(ratio, 0.5, 'x raw batch'), target('msg/s', '>=', 50_000, r.rate), target('p50 ms', '<=', 10, r.latency.p50)],
      detail: { ackedPerSec: r.ackedRate, sentAndHandled: r.sent, batches: r.batches, opsWritten: r.opsWritten, inFlight: o.systemInFlight },
    };
  });

  // Handlers run before their message's batch is durable (the ack waits for it), so the latency that
  // a sender sees is enqueue-to-ack, printed here from the same run.
  await measure(ctx, SUITE, 'durable_tell_ack_latency', `durable tells, same run: enqueue to durable ack`, async () => {
    if (!durableAck) throw new Error('the durable tells run did not complete');
    return { value: durableAck.p50, unit: 'ms p50', p50Ms: durableAck.p50, p99Ms: durableAck.p99, count: durableAck.count, targets: [] };
  });

  await measure(ctx, SUITE, 'sequential_durable_sender', 'durable tells, one sequential sender', async () => {
    const r = await tellsUnderLoad(ctx.tmp.make('sequential'), { durability: 'sync', actors: 1, concurrency: 1, ...timed });
    return {
      value: r.rate,
      unit: 'msg/s',
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      count: r.latency.count,
      windowMs: r.windowMs,
      targets: [target('msg/s', '>=', 2_000, r.rate)],
      detail: { sentAndHandled: r.sent, batches: r.batches },
    };
  });

  await measure(ctx, SUITE, 'relaxed_tells', `relaxed tells, ${o.actors} actors, ${o.systemInFlight} in flight`, async () => {
    const r = await tellsUnderLoad(ctx.tmp.make('relaxed'), { durability: 'relaxed', actors: o.actors, concurrency: o.systemInFlight, ...timed });
    return {
      value: r.rate,
      unit: 'msg/s',
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      count: r.latency.count,
      windowMs: r.windowMs,
      ratio: ratioTo(rawBatch, 'raw batch', r.rate),
      detail: { ackedPerSec: r.ackedRate, sentAndHandled: r.sent, batches: r.batches, inFlight: o.systemInFlight },
    };
  });

  await measure(ctx, SUITE, 'memory_tells', `memory tells, ${o.actors} actors, tight loop`, async () => {
    const r = await memoryTellsTightLoop(ctx.tmp.make('memory'), { actors: o.actors, chunk: o.memoryChunk, warmupCount: o.memoryWarmupCount, durationMs: o.windowMs });
    return {
      value: r.rate,
      unit: 'msg/s',
      count: r.sent,
      windowMs: r.elapsedMs,
      targets: [target('msg/s', '>=', 1_000_000, r.rate)],
      detail: { chunk: o.memoryChunk },
    };
  });

  await measure(ctx, SUITE, 'activations', `actors activated, first tell to ${o.activationCount.toLocaleString('en-US')} ids`, async () => {
    const r = await activations(ctx.tmp.make('activation'), { count: o.activationCount, concurrency: o.activationInFlight });
    if (r.loaded < r.count) throw new Error(`only ${r.loaded} of ${r.count} actors are loaded`);
    return {
      value: r.rate,
      unit: 'actors/s',
      count: r.count,
      windowMs: r.elapsedMs,
      targets: [target('actors/s', '>=', 20_000, r.rate)],
      detail: { inFlight: o.activationInFlight },
    };
  });

  await runAgainstNode(ctx, o, rawEcho);
}

/** The gRPC figures, against one `node dist/cli.js node` child process. */
async function runAgainstNode(ctx: BenchContext, o: RuntimeBenchOptions, rawEcho: Figure): Promise<void> {
  const timed = { warmupMs: o.warmupMs, durationMs: o.windowMs };
  const started: Promise<{ node: CeiNodeProcess; client: CeiClient }> = (async () => {
    ensureBuilt((line) => ctx.note(line));
    if (distIsStale()) ctx.note('dist/ is older than src/: the gRPC figures measure the last build (npm run build to refresh)');
    const node = await startCeiNode(ctx.tmp.make('node'));
    return { node, client: new CeiClient(node.address) };
  })();
  started.catch(() => {});
  try {
    await measure(ctx, SUITE, 'grpc_tell', `gRPC Tell to a node, ${o.grpcInFlight} in flight`, async () => {
      const { client } = await started;
      const r = await grpcTells(client, { actors: o.grpcActors, concurrency: o.grpcInFlight, ...timed });
      const applied = await countersTotal(client, 'tell-', o.grpcActors);
      if (applied !== r.sent) throw new Error(`the node acknowledged ${r.sent} tells and applied ${applied}`);
      const ratio = ratioTo(rawEcho, 'raw echo', r.rate);
      return {
        value: r.rate,
        unit: 'msg/s',
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        count: r.latency.count,
        windowMs: r.windowMs,
        ratio,
        targets: ratioTargets(ratio, 0.7, 'x raw echo'),
        detail: { sentAndApplied: r.sent, inFlight: o.grpcInFlight, actors: o.grpcActors },
      };
    });

    await measure(ctx, SUITE, 'grpc_tell_stream', `gRPC TellStream, one client, ${o.streamWindow} unacked`, async () => {
      const { client } = await started;
      const r = await grpcTellStream(client, { actors: o.grpcActors, window: o.streamWindow, ...timed, deadlineMs: 120_000 });
      const applied = await countersTotal(client, 'stream-', o.grpcActors);
      if (applied !== r.sent) throw new Error(`the node acknowledged ${r.sent} streamed tells and applied ${applied}`);
      return {
        value: r.rate,
        unit: 'msg/s',
        count: r.sent,
        windowMs: r.windowMs,
        targets: [target('msg/s', '>=', 20_000, r.rate)],
        detail: { sentAndApplied: r.sent, actors: o.grpcActors, unacked: o.streamWindow },
      };
    });

    await measure(ctx, SUITE, 'grpc_tell_stream_tellmany', `gRPC TellStream, src/client.ts tellMany`, async () => {
      const { client } = await started;
      const r = await grpcTellMany(client, { actors: o.grpcActors, count: o.tellManyCount });
      const applied = await countersTotal(client, 'many-', o.grpcActors);
      if (applied !== o.tellManyCount) throw new Error(`tellMany got ${o.tellManyCount} acknowledgements and the node applied ${applied}`);
      return {
        value: r.rate,
        unit: 'msg/s',
        count: o.tellManyCount,
        windowMs: r.elapsedMs,
        targets: [target('msg/s', '>=', 20_000, r.rate)],
        detail: { sentAndApplied: o.tellManyCount, actors: o.grpcActors },
      };
    });

    await measure(ctx, SUITE, 'grpc_ask', 'gRPC Ask to a counter, one at a time', async () => {
      const { client } = await started;
      const r = await grpcAsks(client, timed);
      return { value: r.rate, unit: 'asks/s', p50Ms: r.latency.p50, p99Ms: r.latency.p99, count: r.latency.count, windowMs: o.windowMs };
    });
  } finally {
    const s = await started.catch(() => undefined);
    if (s) {
      s.client.close();
      const exit = await s.node.stop();
      if (exit !== 0) ctx.note(`the benchmarked node exited with ${exit}; its stderr:\n${s.node.child.stderr()}`);
    }
  }
}

export const runtimeSuite: Suite = {
  name: SUITE,
  description: 'raw LevelDB and grpc-js ceilings beside durable, relaxed and memory tells, activation, and gRPC Tell, TellStream and Ask',
  run: (ctx) => runRuntime(ctx, ctx.quick ? RUNTIME_BENCH_QUICK : RUNTIME_BENCH_DEFAULTS),
};
