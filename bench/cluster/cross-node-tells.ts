import { performance } from 'node:perf_hooks';
import { tellInBatches, tellMany, type TellItem } from '../../src/client.js';
import { counterRef, type CounterLedger } from './counters.js';
import type { LocalCluster } from './local-cluster.js';

export interface CrossNodeTellsResult {
  /** Tells acknowledged per second, from the first write to the last acknowledgement. */
  rate: number;
  elapsedMs: number;
  tells: number;
}

/**
 * Where the streams send each tell: `owner` asks Cluster.Owners once (untimed) and gives each node
 * the tells of the counters it owns, as a client that routes by owner does; `any` spreads them over
 * every node, which forwards what it does not own.
 */
export type TellRouting = 'owner' | 'any';

/** How each stream sends: `stream` one TellStream message per tell (tellMany), `batches` TellBatches (tellInBatches). */
export type TellApi = 'stream' | 'batches';

/**
 * `tells` durable tells `{"add": n}` (n = 1..5, so sums check more than counts) spread round robin
 * over `actors` counters `<prefix><i>`, sent with src/client.ts tellMany (one TellStream each, its
 * own window of unacknowledged tells) or tellInBatches (`api`, the same over TellBatches) from
 * `streamsPerNode` streams to every node of the cluster at once, each tell to its owner's streams
 * or to any node (`routing`). A node forwards what it does
 * not own to the owner, which acknowledges once its replica has the tell durably too (R=2). Timed
 * from the start of the streams to the last acknowledgement of all of them; every acknowledged tell
 * goes into `ledger`, also when a stream fails.
 */
export async function crossNodeTells(
  cluster: LocalCluster,
  ledger: CounterLedger,
  opts: { prefix: string; actors: number; tells: number; streamsPerNode: number; deadlineMs: number; routing: TellRouting; api: TellApi },
): Promise<CrossNodeTellsResult> {
  const nodes = cluster.live();
  const streams = nodes.length * opts.streamsPerNode;
  // Stream s goes to node s % nodes.length; ownerNode[a] is counter a's owner's index in `nodes`.
  const ownerNode: Array<number | undefined> = [];
  if (opts.routing === 'owner') {
    const refs = Array.from({ length: opts.actors }, (_, a) => counterRef(`${opts.prefix}${a}`));
    const addresses = await cluster.client(nodes[0]!).ownerAddresses(refs);
    for (const address of addresses) {
      const index = nodes.findIndex((n) => n.address === address);
      ownerNode.push(index >= 0 ? index : undefined);
    }
  }
  const perStream: Array<Array<TellItem & { id: string; add: number }>> = Array.from({ length: streams }, () => []);
  const sentTo = new Array<number>(nodes.length).fill(0);
  for (let i = 0; i < opts.tells; i++) {
    const a = i % opts.actors;
    const id = `${opts.prefix}${a}`;
    const add = 1 + (i % 5);
    const owner = ownerNode[a];
    const stream = owner === undefined ? i % streams : owner + nodes.length * (sentTo[owner]++ % opts.streamsPerNode);
    perStream[stream]!.push({ to: counterRef(id), payload: { add }, id, add });
  }
  const begin = performance.now();
  const send = (s: number, items: TellItem[]) => {
    const client = cluster.client(nodes[s % nodes.length]!).actors;
    return opts.api === 'batches' ? tellInBatches(client, items, { deadlineMs: opts.deadlineMs }) : tellMany(client, items, opts.deadlineMs);
  };
  const calls = perStream.map((items, s) => ({ items, call: send(s, items) }));
  const outcomes = await Promise.allSettled(calls.map((c) => c.call));
  const elapsedMs = performance.now() - begin;
  // Acknowledgements are in order: the first acked() items of a stream were acknowledged.
  for (const { items, call } of calls) for (const item of items.slice(0, call.acked())) ledger.ack(item.id, item.add);
  const failed = outcomes.flatMap((o, s) => (o.status === 'rejected' ? [`stream ${s} to node ${nodes[s % nodes.length]!.index}: ${(o.reason as Error).message}`] : []));
  if (failed.length > 0) throw new Error(`${failed.length} of ${streams} streams failed: ${failed.join('; ')}`);
  return { rate: (opts.tells * 1000) / elapsedMs, elapsedMs, tells: opts.tells };
}
