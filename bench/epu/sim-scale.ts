/**
 * The control plane at scale on the sim driver, through the public API of one node: a `sim` site
 * and a deployable type whose sim launches boot in 0 ms, so what is timed is EPU management and the
 * provisioner (domain ticks, provision requests, instance records, state notifications), not a
 * simulated boot.
 *
 * - `converge`: `domains` npreserving domains of `perDomain` each are added (16 adds in flight) and
 *   the clock runs from the first add until every domain lists `perDomain` RUNNING instances. A
 *   domain is described every `pollMs` until it is full, then no more (so polling a large domain
 *   does not load the node for the rest of the run).
 * - `tickCpu`: the node's own CPU time (/proc, user + system) over a window with `domains` domains
 *   of one sim instance each at steady state, minus the same window's CPU on the same node before
 *   any domain existed, divided by the ticks the window holds (domains x window / tick interval).
 */
import { performance } from 'node:perf_hooks';
import type { DomainDescription } from '../../src/actors/epum/protocol.js';
import { inParallel, processCpuMs, sleep, type EpuNode } from './epu-node.js';

export const SIM_SITE = 'sim';
export const SIM_DT = 'simvm';

export async function registerSim(node: EpuNode): Promise<void> {
  await node.dtrs.addSite(SIM_SITE, { type: 'sim', description: 'simulated IaaS' });
  await node.dtrs.addDt(SIM_DT, { sites: { [SIM_SITE]: { boot_latency_ms: 0 } } });
}

const domainIds = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);

const running = (d: DomainDescription): number => d.counts.states.RUNNING ?? 0;
const live = (d: DomainDescription): number => Object.values(d.counts.states).reduce((a, b) => a + b, 0);

export interface ConvergeResult {
  ms: number;
  addsMs: number;
  running: number;
  live: number;
}

/** Adds `domains` domains of `perDomain` sim instances and waits until all are RUNNING. */
export async function converge(node: EpuNode, o: { prefix: string; domains: number; perDomain: number; pollMs: number; timeoutMs: number }): Promise<ConvergeResult> {
  const ids = domainIds(o.prefix, o.domains);
  const conf = { engine: 'npreserving', engine_conf: { preserve_n: o.perDomain, deployable_type: SIM_DT, site: SIM_SITE } };
  const t0 = performance.now();
  const pending = new Set(ids);
  let addsMs = 0;
  const adding = inParallel(ids, 16, async (id) => {
    await node.epum.add({ id, config: conf }, 30_000);
  }).then(() => (addsMs = performance.now() - t0));
  let last = 0;
  let addError: unknown;
  void adding.catch((err: unknown) => (addError = err));
  for (;;) {
    await Promise.race([adding.catch(() => undefined), sleep(o.pollMs)]);
    if (addError !== undefined) throw addError;
    if (performance.now() - t0 > o.timeoutMs) throw new Error(`${pending.size} of ${o.domains} domains not full within ${o.timeoutMs} ms`);
    const batch = [...pending];
    await inParallel(batch, 8, async (id) => {
      const d = await node.epum.describe(id, 5_000).catch(() => undefined);
      if (!d) return; // not added yet
      if (running(d) >= o.perDomain) {
        pending.delete(id);
        last = performance.now();
      }
    });
    if (pending.size === 0) break;
  }
  await adding;
  const ms = last - t0;
  // Untimed: every domain exactly full, nothing else live.
  let total = 0;
  let totalLive = 0;
  await inParallel(ids, 8, async (id) => {
    const d = await node.epum.describe(id, 10_000);
    total += running(d);
    totalLive += live(d);
  });
  return { ms, addsMs, running: total, live: totalLive };
}

export interface TickCpuResult {
  cpuPerTickUs: number;
  grossMs: number;
  baselineMs: number;
  ticks: number;
  windowMs: number;
  convergeMs: number;
  freshSampled: number;
  staleSampled: number;
}

/** CPU per domain tick with `domains` domains at steady state (see the module comment). */
export async function tickCpu(node: EpuNode, o: { domains: number; windowMs: number; settleMs: number; tickMs: number; pollMs: number; timeoutMs: number }): Promise<TickCpuResult> {
  const window = async (): Promise<{ cpu: number; ms: number }> => {
    const c0 = processCpuMs(node.pid);
    const t0 = performance.now();
    await sleep(o.windowMs);
    return { cpu: processCpuMs(node.pid) - c0, ms: performance.now() - t0 };
  };
  await sleep(o.settleMs);
  const base = await window();
  const c = await converge(node, { prefix: 'tick-', domains: o.domains, perDomain: 1, pollMs: o.pollMs, timeoutMs: o.timeoutMs });
  if (c.running !== o.domains) throw new Error(`${c.running} of ${o.domains} instances RUNNING`);
  await sleep(o.settleMs);
  const loaded = await window();
  // Every sampled domain ticked within the last two intervals: the ticks counted did happen.
  const sample = domainIds('tick-', o.domains).filter((_, i) => i % Math.max(1, Math.floor(o.domains / 20)) === 0);
  let fresh = 0;
  for (const id of sample) {
    const d = await node.epum.describe(id, 5_000);
    if (d.last_tick_at !== undefined && Date.now() - d.last_tick_at <= 2 * o.tickMs + 500) fresh++;
  }
  const baselineMs = (base.cpu * loaded.ms) / base.ms;
  const ticks = (o.domains * loaded.ms) / o.tickMs;
  return {
    cpuPerTickUs: ((loaded.cpu - baselineMs) * 1000) / ticks,
    grossMs: loaded.cpu,
    baselineMs,
    ticks,
    windowMs: loaded.ms,
    convergeMs: c.ms,
    freshSampled: fresh,
    staleSampled: sample.length - fresh,
  };
}
