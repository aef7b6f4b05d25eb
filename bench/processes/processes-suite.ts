import type { BenchContext, Suite } from '../suite.js';
import { measure, type Measured } from '../suite.js';
import { formatMs, target, type Figure } from '../support/figure.js';
import { summarize } from '../support/percentiles.js';
import { distIsStale, ensureBuilt } from '../support/cei-node.js';
import { LocalCluster } from '../cluster/local-cluster.js';
import { startEpuNode } from '../epu/epu-node.js';
import { HAS_PROC, killWorkers, reapWorkersOnExit, workerProcesses } from '../epu/workers.js';
import { StreamsClient } from '../../src/client-streams.js';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { actorPlacement, coreAlone, type PlacementResult } from './placement.js';
import { placeTransform, publishToDelivery, waitForAgents, type DeliveryResult } from './stream-transform.js';
import { ELASTIC_DOMAIN, queuedToRunning } from './elastic-start.js';

/** Sizes and bounds of the processes suite. Every measurement is bounded by a count or a time. */
export interface ProcessesBenchOptions {
  /** Simulated workers (one stand-in agent each), their slots, and processes scheduled over them. */
  agents: number;
  slots: number;
  processes: number;
  /** Schedules in flight at once against the dispatcher actor. */
  scheduleInFlight: number;
  /** Longest the core alone and the actor may take; what was RUNNING by then is reported, marked cut off. */
  coreBudgetMs: number;
  actorBudgetMs: number;
  /** Messages through the stream (raw and through the transform), per publish call, calls at once. */
  streamMessages: number;
  publishBatch: number;
  publishInFlight: number;
  /** Messages through an untimed stream first, on the fresh cluster. */
  warmupMessages: number;
  /** Window of the window-average transform (seconds of the messages' `time`). */
  window: number;
  /** Rounds of queued-to-RUNNING with a new worker (a fresh node each). */
  elasticRounds: number;
  /** Describe interval while waiting (the granularity of the time figures). */
  pollMs: number;
  /**
   * `placement`: only the two placement figures; `stream`: only the two stream figures (env
   * CEI_BENCH_PROCESSES_ONLY=placement or stream).
   */
  only?: 'placement' | 'stream';
}

export const PROCESSES_BENCH_DEFAULTS: ProcessesBenchOptions = {
  agents: 1_000,
  slots: 8,
  processes: 10_000,
  scheduleInFlight: 64,
  coreBudgetMs: 60_000,
  actorBudgetMs: 60_000,
  streamMessages: 100_000,
  publishBatch: 250,
  publishInFlight: 4,
  warmupMessages: 5_000,
  window: 10,
  elasticRounds: 5,
  pollMs: 20,
};

/** A short run to check that the suite works, not to read figures from. */
export const PROCESSES_BENCH_QUICK: ProcessesBenchOptions = {
  ...PROCESSES_BENCH_DEFAULTS,
  agents: 100,
  processes: 1_000,
  coreBudgetMs: 10_000,
  actorBudgetMs: 15_000,
  streamMessages: 10_000,
  warmupMessages: 2_000,
  elasticRounds: 2,
};

const SUITE = 'processes';
/** Targets of the issue. */
const PLACEMENTS_PER_SEC = 2_000;
const STREAM_MSG_PER_SEC = 20_000;

const n = (x: number): string => x.toLocaleString('en-US');

function placementFigure(ctx: BenchContext, what: string, r: PlacementResult, o: ProcessesBenchOptions, budgetMs: number, withTarget: boolean, extra: Record<string, number | string | boolean> = {}): Measured {
  if (!r.complete) {
    ctx.note(`${what}: cut off at the ${formatMs(budgetMs)} budget with ${n(r.running)} of ${n(r.want)} RUNNING and ${n(r.scheduled)} of ${n(o.processes)} schedules answered; the rate is over those only and overstates the whole run (each placement costs more as processes accumulate)`);
  } else {
    ctx.note(`${what}: ${n(r.running)} RUNNING in ${formatMs(r.ms)}${r.running < o.processes ? ` (every slot full; ${n(o.processes - r.running)} processes left waiting)` : ''}`);
  }
  return {
    value: r.rate,
    unit: 'proc/s',
    count: r.running,
    windowMs: Math.round(r.ms),
    targets: withTarget ? [target('proc/s', '>=', PLACEMENTS_PER_SEC, r.rate)] : [],
    detail: { complete: r.complete, running: r.running, want: r.want, scheduled: r.scheduled, agents: o.agents, slots: o.slots, processes: o.processes, budgetMs, ...extra },
  };
}

function deliveryFigure(r: DeliveryResult, o: ProcessesBenchOptions, raw: Figure | undefined, withTarget: boolean): Measured {
  return {
    value: r.rate,
    unit: 'msg/s',
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    count: r.count,
    windowMs: Math.round(r.ms),
    ...(raw && raw.error === undefined && raw.value > 0 ? { ratio: { to: 'raw stream', toKey: raw.key, value: r.rate / raw.value } } : {}),
    targets: withTarget ? [target('msg/s', '>=', STREAM_MSG_PER_SEC, r.rate)] : [],
    detail: { publishMs: Math.round(r.publishMs), publishedPerSec: Math.round((r.count * 1000) / r.publishMs), maxMs: Math.round(r.latency.max), batch: o.publishBatch, inFlight: o.publishInFlight },
  };
}

async function runProcesses(ctx: BenchContext, o: ProcessesBenchOptions): Promise<void> {
  ensureBuilt((line) => ctx.note(line));
  if (distIsStale()) ctx.note('dist/ is older than src/: the cluster figures measure the last build (npx tsc -p tsconfig.build.json to refresh)');

  if (o.only !== 'stream') await placement(ctx, o);
  if (o.only === 'placement') return;
  await streamFigures(ctx, o);
  if (o.only === 'stream') return;
  await elastic(ctx, o);
}

/** 1. Placement: the pure core (the ceiling), then the dispatcher actor with stand-in agents. */
async function placement(ctx: BenchContext, o: ProcessesBenchOptions): Promise<void> {
  const size = `${n(o.processes)} proc, ${n(o.agents)}x${o.slots} slots`;
  const core = await measure(ctx, SUITE, 'placement_core', `placement, DispatcherCore alone (${size})`, async () =>
    placementFigure(ctx, 'core alone', coreAlone({ agents: o.agents, slots: o.slots, processes: o.processes, budgetMs: o.coreBudgetMs }), o, o.coreBudgetMs, false),
  );
  await measure(ctx, SUITE, 'placement_actor', `placement, dispatcher actor (${size})`, async () => {
    const r = await actorPlacement(ctx.tmp.make('placement'), {
      agents: o.agents,
      slots: o.slots,
      processes: o.processes,
      inFlight: o.scheduleInFlight,
      heartbeatMs: 1_000,
      budgetMs: o.actorBudgetMs,
    });
    const m = placementFigure(ctx, 'dispatcher actor', r, o, o.actorBudgetMs, true, {
      inFlight: o.scheduleInFlight,
      ...(r.scheduledMs !== undefined ? { scheduledMs: Math.round(r.scheduledMs) } : {}),
      agentsAre: 'stand-in ee-agent actors in the same ActorSystem (sim workers have no agents)',
    });
    return core.error === undefined && core.value > 0 ? { ...m, ratio: { to: 'core alone', toKey: core.key, value: r.rate / core.value } } : m;
  });
}

/** 2. Streams on a real cluster: the raw stream, then through a window-average transform. */
async function streamFigures(ctx: BenchContext, o: ProcessesBenchOptions): Promise<void> {
  const cluster = new LocalCluster(ctx.tmp, 'streams', process.env.CEI_BENCH_NODE_LOGS ?? ctx.tmp.make('streams-logs'), { logLevel: 'info', args: [], readyDeadlineMs: 30_000 });
  let streams: StreamsClient | undefined;
  let dispatcher: DispatcherClient | undefined;
  try {
    const ready = (async () => {
      const boot = await cluster.add('bootstrap');
      await cluster.add('worker');
      await cluster.waitAllUp(30_000);
      streams = new StreamsClient(boot.address);
      dispatcher = new DispatcherClient(boot.address);
      await waitForAgents(dispatcher, 1, 30_000);
    })();
    void ready.catch(() => undefined);
    const stream = { count: o.streamMessages, batch: o.publishBatch, inFlight: o.publishInFlight, timeoutMs: 120_000 };
    const raw = await measure(ctx, SUITE, 'stream_raw', `stream publish->delivery, no transform (${n(o.streamMessages)})`, async () => {
      await ready;
      // Untimed: a first stream through the fresh nodes (JIT, LevelDB files, connections).
      await publishToDelivery(streams!, { ...stream, count: o.warmupMessages, input: 'warm', output: 'warm', subscription: 'bench' });
      return deliveryFigure(await publishToDelivery(streams!, { ...stream, input: 'raw', output: 'raw', subscription: 'bench' }), o, undefined, false);
    });
    await measure(ctx, SUITE, 'stream_transform', `stream through window-average (${n(o.streamMessages)})`, async () => {
      await ready;
      const host = await placeTransform(dispatcher!, { upid: 'wavg-1', input: 'in', output: 'out', window: o.window, timeoutMs: 30_000 });
      ctx.note(`window-average RUNNING on ${host} (worker ${cluster.nodes[1]?.id})`);
      const r = await publishToDelivery(streams!, { ...stream, input: 'in', output: 'out', subscription: 'bench' });
      return deliveryFigure(r, o, raw, true);
    });
  } finally {
    streams?.close();
    dispatcher?.close();
    await cluster.destroy();
  }
}

/** 3. A queued process to RUNNING when its worker must be started first; a fresh node per round. */
async function elastic(ctx: BenchContext, o: ProcessesBenchOptions): Promise<void> {
  await measure(ctx, SUITE, 'queued_to_running', `queued -> RUNNING, new local worker (${o.elasticRounds} rounds)`, async () => {
    if (!HAS_PROC) throw new Error('needs Linux /proc to find and kill worker processes');
    const rounds: number[] = [];
    const spawned: number[] = [];
    const nodeStarts: number[] = [];
    for (let i = 0; i < o.elasticRounds; i++) {
      const siteDir = ctx.tmp.make(`elastic-workers-${i}`);
      const forget = reapWorkersOnExit(siteDir);
      const node = await startEpuNode(ctx.tmp.make(`elastic-node-${i}`));
      try {
        nodeStarts.push(node.startMs);
        const r = await queuedToRunning(node, siteDir, { pollMs: o.pollMs, timeoutMs: 60_000 });
        rounds.push(r.ms);
        spawned.push(r.workerSpawnedMs);
        await node.epum.remove(ELASTIC_DOMAIN, 10_000).catch(() => undefined);
        const deadline = Date.now() + 10_000;
        while (workerProcesses(siteDir).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      } finally {
        killWorkers(siteDir);
        forget();
        await node.stop();
      }
    }
    const l = summarize(rounds);
    const s = summarize(nodeStarts);
    ctx.note(`queued -> RUNNING rounds: ${rounds.map((x) => Math.round(x)).join(' ')} ms; worker process seen after ${spawned.map((x) => Math.round(x)).join(' ')} ms; fresh bootstrap start-to-serve p50 ${formatMs(s.p50)}`);
    return {
      value: l.p50,
      unit: 'ms p50',
      p50Ms: l.p50,
      p99Ms: l.p99,
      count: l.count,
      detail: {
        maxMs: Math.round(l.max),
        workerSpawnedP50Ms: Math.round(summarize(spawned).p50),
        nodeStartP50Ms: Math.round(s.p50),
        pollMs: o.pollMs,
        what: 'schedule call to RUNNING: dispatcher need, pd_default reconfigure and tick, local launch, join, agent heartbeat, launch',
      },
    };
  });
  const q = ctx.figure(SUITE, 'queued_to_running');
  if (q?.detail?.nodeStartP50Ms !== undefined) {
    ctx.report({
      suite: SUITE,
      key: 'node_start',
      label: 'node start-to-serve, fresh bootstrap (same rounds)',
      value: Number(q.detail.nodeStartP50Ms),
      unit: 'ms p50',
      count: q.count,
      targets: [],
      detail: { what: 'spawn of node dist/cli.js node --role=bootstrap to its ready line, the node of each round above' },
    });
  }
}

function onlyFromEnv(value: string | undefined): { only?: 'placement' | 'stream' } {
  if (value === undefined || value === '') return {};
  if (value === 'placement' || value === 'stream') return { only: value };
  throw new Error(`CEI_BENCH_PROCESSES_ONLY: placement or stream, not ${JSON.stringify(value)}`);
}

export const processesSuite: Suite = {
  name: SUITE,
  description: 'dispatcher placement rate (core and actor), stream throughput and p99 through a window-average transform, queued-to-RUNNING with a new worker',
  run: (ctx) =>
    runProcesses(ctx, {
      ...(ctx.quick ? PROCESSES_BENCH_QUICK : PROCESSES_BENCH_DEFAULTS),
      ...onlyFromEnv(process.env.CEI_BENCH_PROCESSES_ONLY),
    }),
};
