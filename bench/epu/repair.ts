/**
 * Time to repair with real local workers: a domain of npreserving preserve_n workers on a local
 * site; each round SIGKILLs one RUNNING worker (its whole process group, as a crash would) and
 * times, from the signal, until the domain again lists preserve_n RUNNING healthy instances, none of
 * them the victim. The domain is described every `pollMs` (the figure's granularity). After each
 * round (untimed) the worker processes alive must be exactly the RUNNING instances.
 */
import { performance } from 'node:perf_hooks';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import type { DomainDescription } from '../../src/actors/epum/protocol.js';
import { runningIds, sleep, type EpuNode } from './epu-node.js';
import { recordedPid, workerProcesses } from './workers.js';

export interface RepairOptions {
  domain: string;
  size: number;
  kills: number;
  pollMs: number;
  /** Bound of one round (and of reaching the first full size). */
  roundTimeoutMs: number;
}

export interface RepairResult {
  /** Per kill: signal to replacement RUNNING, ms. */
  rounds: number[];
  /** Domain added to `size` RUNNING, ms. */
  firstFullMs: number;
  /** Rounds after which a process was left that no RUNNING instance accounts for, or one was missing. */
  mismatches: string[];
}

async function until(node: EpuNode, domain: string, what: string, pollMs: number, timeoutMs: number, check: (d: DomainDescription) => boolean): Promise<DomainDescription> {
  const deadline = performance.now() + timeoutMs;
  let last: DomainDescription | undefined;
  for (;;) {
    last = await node.epum.describe(domain, 2_000).catch(() => last);
    if (last) {
      const failed = last.instances.find((i) => i.state === 'FAILED');
      if (failed) throw new Error(`${failed.instance_id} FAILED: ${failed.state_desc} ${failed.state_detail ?? ''}`);
      if (check(last)) return last;
    }
    if (performance.now() > deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${what}; last: ${JSON.stringify(last?.instances.map((i) => [i.instance_id, i.state, i.health]))}`);
    }
    await sleep(pollMs);
  }
}

/** The worker processes are exactly the RUNNING instances, one each; waits up to `timeoutMs` for stragglers to exit. */
async function processesMatch(siteDir: string, running: string[], timeoutMs: number): Promise<string | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const procs = workerProcesses(siteDir).map((p) => p.instanceId).sort();
    if (JSON.stringify(procs) === JSON.stringify(running)) return undefined;
    if (performance.now() > deadline) return `processes ${procs.join(',')} vs RUNNING ${running.join(',')}`;
    await sleep(20);
  }
}

export async function repairRounds(node: EpuNode, siteDir: string, o: RepairOptions): Promise<RepairResult> {
  const full = (d: DomainDescription) => runningIds(d).length === o.size && d.instances.filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED').length === o.size;
  const t0 = performance.now();
  await node.epum.add({ id: o.domain, config: { engine: 'npreserving', engine_conf: { preserve_n: o.size, deployable_type: 'worker', site: 'here' } } });
  let d = await until(node, o.domain, `${o.size} RUNNING`, o.pollMs, o.roundTimeoutMs, full);
  const firstFullMs = performance.now() - t0;
  const rounds: number[] = [];
  const mismatches: string[] = [];
  for (let k = 0; k < o.kills; k++) {
    const victim = runningIds(d)[k % o.size]!;
    const pid = recordedPid(siteDir, victim);
    if (pid === undefined || !isInstanceProcess(pid, victim)) throw new Error(`round ${k}: no live process recorded for ${victim}`);
    const killedAt = performance.now();
    signalInstance(pid, 'SIGKILL');
    d = await until(node, o.domain, `a replacement for ${victim} RUNNING`, o.pollMs, o.roundTimeoutMs, (x) => full(x) && !runningIds(x).includes(victim));
    rounds.push(performance.now() - killedAt);
    const mismatch = await processesMatch(siteDir, runningIds(d), 5_000);
    if (mismatch) mismatches.push(`round ${k}: ${mismatch}`);
  }
  return { rounds, firstFullMs, mismatches };
}
