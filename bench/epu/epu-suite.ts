import type { BenchContext, Suite } from '../suite.js';
import { measure } from '../suite.js';
import { formatMs, target } from '../support/figure.js';
import { summarize } from '../support/percentiles.js';
import { distIsStale, ensureBuilt } from '../support/cei-node.js';
import { startEpuNode, type EpuNode } from './epu-node.js';
import { repairRounds } from './repair.js';
import { converge, registerSim, tickCpu } from './sim-scale.js';
import { HAS_PROC, killWorkers, reapWorkersOnExit, workerProcesses } from './workers.js';

/** Sizes and deadlines of the EPU suite. Every measurement is bounded by a count or a time. */
export interface EpuBenchOptions {
  /** Fresh bootstrap nodes started (and stopped) for the start-to-serve figure. */
  nodeStarts: number;
  /** Workers the repaired domain keeps, and SIGKILL rounds. */
  repairSize: number;
  repairKills: number;
  /** Instances brought to RUNNING on the sim driver, each spread over `simDomains` domains. */
  simDomains: number;
  simSmall: number;
  simLarge: number;
  /** Domains (one sim instance each) of the tick CPU figure, and its window. */
  tickDomains: number;
  tickWindowMs: number;
  /** Describe interval while waiting (the granularity of the time figures). */
  pollMs: number;
}

export const EPU_BENCH_DEFAULTS: EpuBenchOptions = {
  nodeStarts: 5,
  repairSize: 2,
  repairKills: 10,
  simDomains: 100,
  simSmall: 2_000,
  simLarge: 10_000,
  tickDomains: 1_000,
  tickWindowMs: 5_000,
  pollMs: 20,
};

/** A short run to check that the suite works, not to read figures from. */
export const EPU_BENCH_QUICK: EpuBenchOptions = {
  ...EPU_BENCH_DEFAULTS,
  nodeStarts: 2,
  repairKills: 3,
  simSmall: 200,
  simLarge: 1_000,
  tickDomains: 200,
  tickWindowMs: 2_000,
};

const SUITE = 'epu';
/** The domains' tick when their config names none (src/actors/epum/options.ts EPUM_DEFAULTS). */
const DEFAULT_TICK_MS = 1_000;
const REPAIR_P99_MS = 2_000;
const SIM_10K_MS = 30_000;

const n = (x: number): string => x.toLocaleString('en-US');
const k = (x: number): string => (x % 1000 === 0 ? `${x / 1000}k` : String(x));

/** A fresh bootstrap node with default flags on a fresh data directory; stopped by `fn`'s end. */
async function withNode<T>(ctx: BenchContext, name: string, fn: (node: EpuNode) => Promise<T>): Promise<T> {
  const node = await startEpuNode(ctx.tmp.make(name));
  try {
    return await fn(node);
  } finally {
    await node.stop();
  }
}

async function runEpu(ctx: BenchContext, o: EpuBenchOptions): Promise<void> {
  ensureBuilt((line) => ctx.note(line));
  if (distIsStale()) ctx.note('dist/ is older than src/: the epu figures measure the last build (npm run build to refresh)');

  await measure(ctx, SUITE, 'repair_local', `time to repair, SIGKILLed local worker (${o.repairKills} kills)`, async () => {
    if (!HAS_PROC) throw new Error('needs Linux /proc to find and kill worker processes');
    const siteDir = ctx.tmp.make('repair-workers');
    const forget = reapWorkersOnExit(siteDir);
    try {
      return await withNode(ctx, 'repair-node', async (node) => {
        await node.dtrs.addSite('here', { type: 'local', description: 'this machine', settings: { data_dir: siteDir } });
        await node.dtrs.addDt('worker', { sites: { here: {} } });
        const r = await repairRounds(node, siteDir, { domain: 'repair', size: o.repairSize, kills: o.repairKills, pollMs: o.pollMs, roundTimeoutMs: 30_000 });
        // Removing the domain terminates its workers: none may be left.
        await node.epum.remove('repair', 10_000);
        const deadline = Date.now() + 15_000;
        while (workerProcesses(siteDir).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
        const left = workerProcesses(siteDir).length;
        if (r.mismatches.length > 0) throw new Error(`worker processes did not match the RUNNING instances: ${r.mismatches.join('; ')}`);
        if (left > 0) throw new Error(`${left} worker processes left after removing the domain`);
        const l = summarize(r.rounds);
        ctx.note(`repair rounds: ${r.rounds.map((x) => Math.round(x)).join(' ')} ms; this node's start-to-serve: ${formatMs(node.startMs)}`);
        return {
          value: l.p50,
          unit: 'ms p50',
          p50Ms: l.p50,
          p99Ms: l.p99,
          count: l.count,
          targets: [target('p99 ms', '<=', REPAIR_P99_MS, l.p99)],
          detail: {
            maxMs: l.max,
            preserveN: o.repairSize,
            tickMs: DEFAULT_TICK_MS,
            pollMs: o.pollMs,
            firstFullMs: Math.round(r.firstFullMs),
            nodeStartToServeMs: Math.round(node.startMs),
          },
        };
      });
    } finally {
      killWorkers(siteDir);
      forget();
    }
  });

  await measure(ctx, SUITE, 'node_start', `node start-to-serve, fresh bootstrap (${o.nodeStarts} starts)`, async () => {
    const starts: number[] = [];
    for (let i = 0; i < o.nodeStarts; i++) starts.push(await withNode(ctx, `start-${i}`, async (node) => node.startMs));
    const l = summarize(starts);
    return { value: l.p50, unit: 'ms p50', p50Ms: l.p50, p99Ms: l.p99, count: l.count, detail: { maxMs: l.max, what: 'spawn of node dist/cli.js node to its ready line' } };
  });

  for (const total of [o.simSmall, o.simLarge]) {
    const key = total === o.simSmall ? 'sim_running_2k' : 'sim_running_10k';
    await measure(ctx, SUITE, key, `${n(total)} sim instances RUNNING, ${o.simDomains} domains`, async () =>
      withNode(ctx, `sim-${k(total)}`, async (node) => {
        await registerSim(node);
        const perDomain = Math.ceil(total / o.simDomains);
        const r = await converge(node, { prefix: 'd', domains: o.simDomains, perDomain, pollMs: 100, timeoutMs: 120_000 });
        if (r.running !== perDomain * o.simDomains || r.live !== r.running) throw new Error(`converged, then ${r.running} RUNNING and ${r.live} live of ${perDomain * o.simDomains}`);
        ctx.note(`${n(r.running)} sim instances RUNNING in ${formatMs(r.ms)} (adds done at ${formatMs(r.addsMs)})`);
        return {
          value: r.ms,
          unit: 'ms',
          count: r.running,
          targets: total === o.simLarge ? [target('ms', '<=', SIM_10K_MS, r.ms)] : [],
          detail: {
            instancesPerSec: Math.round((r.running * 1000) / r.ms),
            addsMs: Math.round(r.addsMs),
            domains: o.simDomains,
            bootLatencyMs: 0,
            tickMs: DEFAULT_TICK_MS,
            pollMs: 100,
            driver: 'one SimCloud per site driver inside the provisioner (createDriver); launched through the public API',
          },
        };
      }),
    );
  }

  await measure(ctx, SUITE, 'tick_cpu_1k', `CPU per domain tick, ${n(o.tickDomains)} domains`, async () =>
    withNode(ctx, 'tick', async (node) => {
      await registerSim(node);
      const r = await tickCpu(node, { domains: o.tickDomains, windowMs: o.tickWindowMs, settleMs: 1_000, tickMs: DEFAULT_TICK_MS, pollMs: 100, timeoutMs: 120_000 });
      if (r.staleSampled > 0) throw new Error(`${r.staleSampled} of ${r.staleSampled + r.freshSampled} sampled domains did not tick in the window`);
      return {
        value: r.cpuPerTickUs,
        unit: 'µs CPU/tick',
        count: Math.round(r.ticks),
        windowMs: Math.round(r.windowMs),
        detail: {
          nodeCpuMs: Math.round(r.grossMs),
          idleNodeCpuMs: Math.round(r.baselineMs),
          coresUsed: Number((r.grossMs / r.windowMs).toFixed(2)),
          tickMs: DEFAULT_TICK_MS,
          convergeMs: Math.round(r.convergeMs),
          what: 'whole-node CPU (ticks, sim heartbeats, provisioner reconcile) minus the idle node, per estimated tick',
        },
      };
    }),
  );
}

export const epuSuite: Suite = {
  name: SUITE,
  description: 'time to repair a SIGKILLed local worker, node start-to-serve, sim instances to RUNNING at scale, CPU per domain tick',
  run: (ctx) => runEpu(ctx, ctx.quick ? EPU_BENCH_QUICK : EPU_BENCH_DEFAULTS),
};
