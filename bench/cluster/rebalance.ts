import { performance } from 'node:perf_hooks';
import type { CeiClient } from '../../src/client.js';
import { counterRef, isRetryable, verifyCounters, type CounterLedger } from './counters.js';
import { crossNodeTells } from './cross-node-tells.js';
import { sleep, type LocalCluster, type NodeRole } from './local-cluster.js';

export interface RebalanceOptions {
  /** Counters `<prefix><i>` created (one acknowledged tell each) before the node joins. */
  actors: number;
  prefix: string;
  /** Every `actors / sample`-th counter is in the sample the end condition checks. */
  sample: number;
  role: NodeRole;
  streamsPerNode: number;
  /** Deadline of each describe and ask while polling. */
  askMs: number;
  /** The join fails when the end condition does not hold this long after the ready line. */
  timeoutMs: number;
}

export interface RebalanceResult {
  /** The joining node's ready line to the end condition (ms). */
  ms: number;
  /** Ready line to every member up on every node (ms). */
  upMs: number;
  /** Sampled counters, and those the new node owns. */
  sampled: number;
  sampledOnNew: number;
  /** Untimed check after the figure: every counter's owner and state, and when that check ended (ms after ready). */
  ownedByNew: number;
  allCheckedMs: number;
  /** Tells/s of the load that created the counters. */
  loadRate: number;
}

/** Runs `fn` on each item, `concurrency` at a time. */
async function forEach<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * The time to rebalance `actors` counters onto a joining node. The counters are created through all
 * nodes of the running cluster (one acknowledged tell `{"add": n}` each), then a node of `role`
 * starts with `--join` the bootstrap node. The clock starts at its ready line and stops when:
 *
 *  1. every node's membership view (the new node's included) lists every member `up` and is not
 *     fenced: every node now routes by rings that include the new node; and
 *  2. every counter of a fixed sample (every k-th id, spread over the ring by hashing) that the new
 *     node owns - per Describe through the new node, which is answered by the owner itself - answers
 *     an Ask through the new node with exactly what was acknowledged for it (so its state was handed
 *     over, not started empty), and Describe through the bootstrap node names the new node too.
 *
 * A sampled counter owned by another node is settled by its first Describe after (1). The sample
 * stands for all counters because one ring change hands all of them over in one run; the untimed
 * check after the figure confirms it: every counter's owner is described and its state asked (any
 * node), and how many the new node owns and when that check ended are kept as details.
 */
export async function rebalanceOntoJoiner(cluster: LocalCluster, ledger: CounterLedger, opts: RebalanceOptions): Promise<RebalanceResult> {
  const load = await crossNodeTells(cluster, ledger, { prefix: opts.prefix, actors: opts.actors, tells: opts.actors, streamsPerNode: opts.streamsPerNode, deadlineMs: 120_000, routing: 'any', api: 'stream' });
  const ids = Array.from({ length: opts.actors }, (_, i) => `${opts.prefix}${i}`);
  const step = Math.max(1, Math.floor(opts.actors / opts.sample));
  const sample = ids.filter((_, i) => i % step === 0);

  const joiner = await cluster.add(opts.role);
  const readyAt = joiner.readyAt;
  const deadline = readyAt + opts.timeoutMs;
  const fail = async (what: string): Promise<never> => {
    throw new Error(`${what} within ${opts.timeoutMs} ms of node ${joiner.index} (${joiner.id}) joining: ${await cluster.views()}`);
  };

  while (!(await cluster.allUp())) {
    if (performance.now() >= deadline) await fail('not every member was up on every node');
    await sleep(5);
  }
  const upMs = performance.now() - readyAt;

  const viaNew = cluster.client(joiner);
  const viaBootstrap = cluster.client(cluster.nodes[0]!);
  const pending = new Set(sample);
  let onNew = 0;
  let lastProblem = '';
  while (pending.size > 0) {
    if (performance.now() >= deadline) await fail(`${pending.size} of ${sample.length} sampled counters were not served (last: ${lastProblem})`);
    await forEach([...pending], 32, async (id) => {
      const ref = counterRef(id);
      try {
        const info = await viaNew.describe(ref, opts.askMs);
        if (info.node !== joiner.id) {
          pending.delete(id);
          return;
        }
        const got = await viaNew.ask<{ value: number; count: number }>(ref, { get: true }, opts.askMs, opts.askMs);
        const want = ledger.expected(id);
        if (got.value !== want.value || got.count !== want.count) {
          lastProblem = `${id} on the new node answered ${JSON.stringify(got)}, acknowledged ${JSON.stringify(want)}`;
          return;
        }
        const seen = await viaBootstrap.describe(ref, opts.askMs);
        if (seen.node !== joiner.id) {
          lastProblem = `${id}: the new node owns it, the bootstrap node describes ${seen.node} as its owner`;
          return;
        }
        pending.delete(id);
        onNew++;
      } catch (err) {
        if (!isRetryable(err)) throw err;
        lastProblem = `${id}: ${(err as Error).message}`;
      }
    });
    if (pending.size > 0) await sleep(5);
  }
  const ms = performance.now() - readyAt;
  if (onNew === 0) throw new Error(`the new node owns none of the ${sample.length} sampled counters: nothing was rebalanced`);

  // Untimed: every counter holds what was acknowledged, and who owns each.
  const clients: CeiClient[] = cluster.live().map((n) => cluster.client(n));
  await verifyCounters(clients, ledger);
  let ownedByNew = 0;
  await forEach(ids, 32, async (id, i) => {
    const info = await clients[i % clients.length]!.describe(counterRef(id), 10_000);
    if (info.node === joiner.id) ownedByNew++;
  });
  return { ms, upMs, sampled: sample.length, sampledOnNew: onNew, ownedByNew, allCheckedMs: performance.now() - readyAt, loadRate: load.rate };
}
