import { performance } from 'node:perf_hooks';
import { tellMany, type TellItem } from '../../src/client.js';
import { counterRef, type CounterLedger } from './counters.js';
import type { LocalCluster } from './local-cluster.js';

export interface CrossNodeTellsResult {
  /** Tells acknowledged per second, from the first write to the last acknowledgement. */
  rate: number;
  elapsedMs: number;
  tells: number;
}

/**
 * `tells` durable tells `{"add": n}` (n = 1..5, so sums check more than counts) spread round robin
 * over `actors` counters `<prefix><i>`, sent with src/client.ts tellMany (one TellStream each, its
 * own window of unacknowledged tells) from `streamsPerNode` streams to every node of the cluster at
 * once. Every node forwards what it does not own to the owner, which acknowledges once its replica
 * has the tell durably too (R=2). Timed from the start of the streams to the last acknowledgement of
 * all of them; every acknowledged tell goes into `ledger`, also when a stream fails.
 */
export async function crossNodeTells(
  cluster: LocalCluster,
  ledger: CounterLedger,
  opts: { prefix: string; actors: number; tells: number; streamsPerNode: number; deadlineMs: number },
): Promise<CrossNodeTellsResult> {
  const nodes = cluster.live();
  const streams = nodes.length * opts.streamsPerNode;
  const perStream: Array<Array<TellItem & { id: string; add: number }>> = Array.from({ length: streams }, () => []);
  for (let i = 0; i < opts.tells; i++) {
    const id = `${opts.prefix}${i % opts.actors}`;
    const add = 1 + (i % 5);
    perStream[i % streams]!.push({ to: counterRef(id), payload: { add }, id, add });
  }
  const begin = performance.now();
  const calls = perStream.map((items, s) => ({ items, call: tellMany(cluster.client(nodes[s % nodes.length]!).actors, items, opts.deadlineMs) }));
  const outcomes = await Promise.allSettled(calls.map((c) => c.call));
  const elapsedMs = performance.now() - begin;
  // Acknowledgements are in order: the first acked() items of a stream were acknowledged.
  for (const { items, call } of calls) for (const item of items.slice(0, call.acked())) ledger.ack(item.id, item.add);
  const failed = outcomes.flatMap((o, s) => (o.status === 'rejected' ? [`stream ${s} to node ${nodes[s % nodes.length]!.index}: ${(o.reason as Error).message}`] : []));
  if (failed.length > 0) throw new Error(`${failed.length} of ${streams} TellStreams failed: ${failed.join('; ')}`);
  return { rate: (opts.tells * 1000) / elapsedMs, elapsedMs, tells: opts.tells };
}
