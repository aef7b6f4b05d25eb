import type { BenchContext, Suite } from '../suite.js';
import { measure } from '../suite.js';
import { formatMs, formatNumber, target, type Figure } from '../support/figure.js';
import { summarize } from '../support/percentiles.js';
import { distIsStale, ensureBuilt } from '../support/cei-node.js';
import { checkCounters, CounterLedger, describeMismatch, verifyCounters } from './counters.js';
import { crossNodeTells, type TellApi, type TellRouting } from './cross-node-tells.js';
import { failoverRounds, type FailoverOptions, type FailoverRound } from './failover.js';
import { LocalCluster, type NodeRole } from './local-cluster.js';
import { rawStream } from './raw-stream.js';
import { rawTellStream } from './raw-tellstream.js';
import { rebalanceOntoJoiner } from './rebalance.js';

/** Sizes and deadlines of the cluster suite. Every measurement is bounded by a count or a time. */
export interface ClusterBenchOptions {
  /** Uncounted lead-in and counted window of the raw stream (ms). */
  warmupMs: number;
  windowMs: number;
  /** Messages per write of the raw stream (the issue's figure is 100), and writes unacknowledged at once. */
  rawPerWrite: number;
  rawInFlight: number;
  /** Counters the cross-node tells are spread over. */
  tellActors: number;
  /**
   * Tells sent (untimed) before the timed ones: they activate the counters and bring the nodes to
   * their steady state. V8 deoptimizes and recompiles the tell path through the first ~100,000
   * tells after the counters exist (see docs/cluster.md, tenth session), so a short warm-up timed a
   * node still compiling: its rate is kept as `detail.warmupRate`.
   */
  warmupTells: number;
  /** Timed tells, and TellStreams (src/client.ts tellMany) to each node at once. */
  tells: number;
  streamsPerNode: number;
  /** SIGKILL and SIGSTOP fail-over rounds. */
  killRounds: number;
  stopRounds: number;
  /** Deadline of each ask while waiting for a fail-over (the polling granularity). */
  failoverAskMs: number;
  /** Counters created before a node joins, how many of them are sampled, and the joining node's role. */
  rebalanceActors: number;
  rebalanceSample: number;
  joinerRole: NodeRole;
  /** `--log-level` of the nodes (the CLI's default). Their logs are kept in files (see README). */
  logLevel: string;
  /**
   * `tells`: raw_stream and tells_r2 only; `failover`: raw_stream, tells_r2 (they fill the cluster
   * the fail-overs run on) and both fail-overs; `rebalance`: rebalance_10k only (env
   * CEI_BENCH_CLUSTER_ONLY).
   */
  only?: 'tells' | 'failover' | 'rebalance';
}

export const CLUSTER_BENCH_DEFAULTS: ClusterBenchOptions = {
  warmupMs: 1_000,
  windowMs: 4_000,
  rawPerWrite: 100,
  rawInFlight: 64,
  tellActors: 3_000,
  warmupTells: 120_000,
  tells: 120_000,
  streamsPerNode: 2,
  killRounds: 20,
  stopRounds: 5,
  failoverAskMs: 200,
  rebalanceActors: 10_000,
  rebalanceSample: 1_000,
  joinerRole: 'worker',
  logLevel: 'info',
};

/** A short run to check that the suite works, not to read figures from. */
export const CLUSTER_BENCH_QUICK: ClusterBenchOptions = {
  ...CLUSTER_BENCH_DEFAULTS,
  warmupMs: 200,
  windowMs: 500,
  tellActors: 1_000,
  warmupTells: 2_000,
  tells: 12_000,
  killRounds: 3,
  stopRounds: 1,
  rebalanceActors: 1_000,
  rebalanceSample: 200,
};

const SUITE = 'cluster';

/**
 * The issue's target for durable R=2 tells, and the raw stream it was set against (about 184,000
 * msg/s on the issue's machine): on a shared host the ratio to a raw stream measured beside the
 * tells is the figure to judge, the absolute rate moves with the neighbours.
 */
const TELLS_TARGET = 30_000;
const ISSUE_RAW_STREAM = 184_000;
const TELL_PREFIX = 'tell-';
/** Fail-over targets of the issue (p99, default flags). */
const KILL_P99_MS = 1_000;
const STOP_P99_MS = 2_000;

/** `--quick`'s sizes, or the defaults; CEI_BENCH_CLUSTER_ONLY picks some figures. */
function optionsFor(ctx: BenchContext): ClusterBenchOptions {
  return { ...(ctx.quick ? CLUSTER_BENCH_QUICK : CLUSTER_BENCH_DEFAULTS), ...onlyFromEnv(process.env.CEI_BENCH_CLUSTER_ONLY) };
}

function onlyFromEnv(value: string | undefined): Pick<ClusterBenchOptions, 'only'> {
  if (value === undefined || value === '') return {};
  if (value === 'tells' || value === 'failover' || value === 'rebalance') return { only: value };
  throw new Error(`CEI_BENCH_CLUSTER_ONLY: tells, failover or rebalance, not ${JSON.stringify(value)}`);
}

/**
 * A LocalCluster of a bootstrap node and two control nodes with default flags, every member up.
 * Node logs go to $CEI_BENCH_NODE_LOGS when set (kept), else to the run's temp dirs (deleted);
 * $CEI_BENCH_NODE_LOG_LEVEL overrides their level (debug, to chase a slow fail-over).
 */
async function threeNodes(ctx: BenchContext, name: string, o: ClusterBenchOptions): Promise<LocalCluster> {
  ensureBuilt((line) => ctx.note(line));
  if (distIsStale()) ctx.note('dist/ is older than src/: the cluster figures measure the last build (npm run build to refresh)');
  const logDir = process.env.CEI_BENCH_NODE_LOGS ?? ctx.tmp.make(`${name}-logs`);
  const logLevel = process.env.CEI_BENCH_NODE_LOG_LEVEL ?? o.logLevel;
  const cluster = new LocalCluster(ctx.tmp, name, logDir, { logLevel, args: [], readyDeadlineMs: 20_000 });
  try {
    await cluster.add('bootstrap');
    await Promise.all([cluster.add('control'), cluster.add('control')]);
    await cluster.waitAllUp(30_000);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  ctx.note(`${name}: 3 nodes up (${cluster.nodes.map((n) => `${n.index}=${n.id}@${n.address}`).join(' ')}), logs in ${logDir}`);
  return cluster;
}

function failoverFigure(rounds: FailoverRound[], p99Target: number, o: ClusterBenchOptions, extra: Record<string, number | string | boolean> = {}) {
  const l = summarize(rounds.map((r) => r.ms));
  const rejoin = summarize(rounds.map((r) => r.rejoinMs));
  const wrong = rounds.filter((r) => r.wrongState !== undefined);
  // An answer without every acknowledged tell is a failed fail-over, however fast: fail the figure.
  if (wrong.length > 0) {
    throw new Error(
      `p50 ${formatMs(l.p50)}, p99 ${formatMs(l.p99)} over ${l.count} rounds, but in ${wrong.length} the first answer lacked acknowledged tells: ` +
        wrong.map((r) => `node ${r.node}: ${r.wrongState}`).join('; '),
    );
  }
  return {
    value: l.p50,
    unit: 'ms p50',
    p50Ms: l.p50,
    p99Ms: l.p99,
    count: l.count,
    targets: [target('p99 ms', '<=', p99Target, l.p99)],
    detail: {
      maxMs: l.max,
      askDeadlineMs: o.failoverAskMs,
      asksP50: summarize(rounds.map((r) => r.asks)).p50,
      rejoinP50Ms: rejoin.p50,
      rejoinMaxMs: rejoin.max,
      ...extra,
    },
  };
}

async function runCluster(ctx: BenchContext, o: ClusterBenchOptions): Promise<void> {
  if (o.only !== 'rebalance') await tellsAndFailovers(ctx, o);
  if (o.only === undefined || o.only === 'rebalance') await rebalance(ctx, o);
}

async function tellsAndFailovers(ctx: BenchContext, o: ClusterBenchOptions): Promise<void> {
  const rawNow = () => rawStream(ctx.tmp.make('raw-stream'), { perWrite: o.rawPerWrite, inFlight: o.rawInFlight, actors: o.tellActors, warmupMs: o.warmupMs, durationMs: o.windowMs });
  const raw = await measure(ctx, SUITE, 'raw_stream', `raw grpc-js stream, ${o.rawPerWrite}/write, LevelDB group commit`, async () => {
    const r = await rawNow();
    return { value: r.rate, unit: 'msg/s', count: r.messages, windowMs: r.windowMs, detail: { perWrite: o.rawPerWrite, writesInFlight: o.rawInFlight, acked: r.acked } };
  });
  const streams = 3 * o.streamsPerNode;
  const rawTells = await measure(ctx, SUITE, 'raw_tellstream', `raw grpc-js TellStream, acknowledged on arrival, ${streams} streams`, async () => {
    const r = await rawTellStream({ streams, actors: o.tellActors, warmupTells: o.warmupTells, tells: o.tells });
    return { value: r.rate, unit: 'msg/s', count: r.tells, windowMs: r.elapsedMs, detail: { streams } };
  });

  // One 3-node cluster for the tells and both fail-overs: the fail-overs run on nodes that hold data.
  const started = threeNodes(ctx, 'c3', o);
  started.catch(() => {});
  const ledger = new CounterLedger();
  try {
    // Owner-routed first: its warm-up creates the counters, so both runs time tells to live actors.
    const tells = (key: string, routing: TellRouting, api: TellApi, label: string) =>
      measure(ctx, SUITE, key, label, async () => {
        const cluster = await started;
        const run = { prefix: TELL_PREFIX, actors: o.tellActors, streamsPerNode: o.streamsPerNode, routing, api };
        const warmup = await crossNodeTells(cluster, ledger, { ...run, tells: o.warmupTells, deadlineMs: 300_000 });
        // The raw stream again just before and just after (the cluster idle), for a ratio that the
        // host's load over the minutes of the suite does not skew.
        const before = await rawNow();
        const r = await crossNodeTells(cluster, ledger, { ...run, tells: o.tells, deadlineMs: 300_000 });
        const after = await rawNow();
        const rawBeside = (before.rate + after.rate) / 2;
        const clients = cluster.live().map((n) => cluster.client(n));
        const check = await checkCounters(clients, ledger);
        // A rate of tells that were not applied exactly once is no figure: fail it, saying both.
        if (check.wrong.length > 0) throw new Error(`${formatNumber(r.rate)} msg/s acknowledged, but ${describeMismatch(check, ledger)}`);
        const ratio = r.rate / rawBeside;
        return {
          value: r.rate,
          unit: 'msg/s',
          count: r.tells,
          windowMs: r.elapsedMs,
          ratio: { to: 'raw stream beside it', toKey: raw.key, value: ratio },
          targets: [target('msg/s', '>=', TELLS_TARGET, r.rate), target('x raw stream', '>=', Number((TELLS_TARGET / ISSUE_RAW_STREAM).toFixed(3)), ratio)],
          detail: {
            actors: o.tellActors,
            streams: clients.length * o.streamsPerNode,
            routing,
            api,
            warmupTells: o.warmupTells,
            warmupRate: Math.round(warmup.rate),
            acknowledgedAndApplied: check.count,
            rawBefore: Math.round(before.rate),
            rawAfter: Math.round(after.rate),
            // One TellStream message per tell costs what raw_tellstream costs before any work is done.
            ...(api === 'stream' && rawTells.error === undefined ? { ofRawTellStream: Number((r.rate / rawTells.value).toFixed(3)) } : {}),
          },
        };
      });
    await tells('tells_r2', 'owner', 'stream', `durable tells R=2, TellStream by owner, 3 nodes x ${o.streamsPerNode}`);
    await tells('tells_r2_forwarded', 'any', 'stream', `durable tells R=2, TellStream to any node, 3 nodes x ${o.streamsPerNode}`);
    await tells('tells_r2_batched', 'owner', 'batches', `durable tells R=2, TellBatches by owner, 3 nodes x ${o.streamsPerNode}`);

    if (o.only === 'tells') return;
    const failover = (signal: FailoverOptions['signal'], rounds: number): FailoverOptions => ({
      signal,
      rounds,
      prefix: signal === 'SIGKILL' ? 'kill-' : 'stop-',
      askMs: o.failoverAskMs,
      giveUpMs: 30_000,
      tellsBefore: 3,
      selfRejoinMs: 20_000,
      upTimeoutMs: 60_000,
    });

    await measure(ctx, SUITE, 'failover_kill', `fail-over after SIGKILL of the owner, ${o.killRounds} kills`, async () => {
      const cluster = await started;
      const rounds = await failoverRounds(cluster, ledger, failover('SIGKILL', o.killRounds), (line) => ctx.note(line));
      return failoverFigure(rounds, KILL_P99_MS, o);
    });

    await measure(ctx, SUITE, 'failover_stop', `fail-over after SIGSTOP of the owner, ${o.stopRounds} stops`, async () => {
      const cluster = await started;
      const rounds = await failoverRounds(cluster, ledger, failover('SIGSTOP', o.stopRounds), (line) => ctx.note(line));
      // After every fail-over: the fail-over actors must hold exactly what was acknowledged (else the
      // figure fails), and so should the tells' counters, which moved with every kill; those are
      // checked against the same ledger, and a difference is kept as a detail (the tells figure
      // already failed if they differed before the fail-overs).
      const clients = cluster.live().map((n) => cluster.client(n));
      const failoverIds = ledger.ids().filter((id) => !id.startsWith(TELL_PREFIX));
      await verifyCounters(clients, ledger, failoverIds);
      const tellIds = ledger.ids().filter((id) => id.startsWith(TELL_PREFIX));
      const after = await checkCounters(clients, ledger, tellIds);
      if (after.wrong.length > 0) ctx.note(`after the fail-overs: ${describeMismatch(after, ledger, tellIds)}`);
      return failoverFigure(rounds, STOP_P99_MS, o, {
        selfRejoined: rounds.filter((r) => r.selfRejoined).length,
        failoverActorsExact: failoverIds.length,
        tellCountersAfterFailovers: after.wrong.length === 0 ? `${after.counters} exact` : `${after.wrong.length} of ${after.counters} differ`,
      });
    });
  } finally {
    const cluster = await started.catch(() => undefined);
    await cluster?.destroy();
  }
}

async function rebalance(ctx: BenchContext, o: ClusterBenchOptions): Promise<void> {
  await measure(ctx, SUITE, 'rebalance_10k', `rebalance ${o.rebalanceActors.toLocaleString('en-US')} actors onto a joining ${o.joinerRole}`, async () => {
    // A fresh cluster, so that the counters created here are all the actors there are.
    const cluster = await threeNodes(ctx, 'rb', o);
    try {
      const r = await rebalanceOntoJoiner(cluster, new CounterLedger(), {
        actors: o.rebalanceActors,
        prefix: 'rb-',
        sample: o.rebalanceSample,
        role: o.joinerRole,
        streamsPerNode: o.streamsPerNode,
        askMs: 1_000,
        timeoutMs: 60_000,
      });
      return {
        value: r.ms,
        unit: 'ms',
        count: o.rebalanceActors,
        targets: [target('ms', '<=', 5_000, r.ms)],
        detail: {
          allUpMs: r.upMs,
          sampled: r.sampled,
          sampledOnNewNode: r.sampledOnNew,
          ownedByNewNode: r.ownedByNew,
          allCheckedMs: r.allCheckedMs,
          loadTellsPerSec: r.loadRate,
        },
      };
    } finally {
      await cluster.destroy();
    }
  });
}

export const clusterSuite: Suite = {
  name: SUITE,
  description: 'raw batched-stream ceiling, cross-node durable tells R=2, fail-over after SIGKILL and SIGSTOP, rebalance onto a joining node',
  run: (ctx) => runCluster(ctx, optionsFor(ctx)),
};
