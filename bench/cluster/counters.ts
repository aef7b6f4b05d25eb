import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import type { CeiClient } from '../../src/client.js';

export type CounterRef = { type: 'counter'; id: string };
export interface CounterState {
  value: number;
  count: number;
}

export const counterRef = (id: string): CounterRef => ({ type: 'counter', id });

/**
 * What the cluster acknowledged, per counter: the sum of the `add`s and the number of tells. Only
 * acknowledged tells go in, so at the end each counter must hold exactly its entry here.
 */
export class CounterLedger {
  private readonly want = new Map<string, CounterState>();

  ack(id: string, add: number): void {
    const w = this.want.get(id);
    if (w) {
      w.value += add;
      w.count++;
    } else this.want.set(id, { value: add, count: 1 });
  }

  expected(id: string): CounterState {
    return this.want.get(id) ?? { value: 0, count: 0 };
  }

  ids(): string[] {
    return [...this.want.keys()];
  }

  /** Tells acknowledged in all. */
  get acked(): number {
    let n = 0;
    for (const w of this.want.values()) n += w.count;
    return n;
  }
}

/** gRPC codes after which the same call may succeed when sent again (src/api/status.ts' set, and a broken call). */
export function isRetryable(err: unknown): boolean {
  const code = (err as Partial<grpc.ServiceError>).code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.RESOURCE_EXHAUSTED || code === grpc.status.CANCELLED;
}

/**
 * Asks `{"get": true}` of `ref`, through the clients in turn, retrying retryable failures until
 * `giveUpMs` has passed; each ask has a deadline of `askMs`.
 */
export async function getCounter(clients: CeiClient[], ref: CounterRef, opts: { askMs: number; giveUpMs: number; first?: number }): Promise<CounterState> {
  const until = performance.now() + opts.giveUpMs;
  for (let attempt = opts.first ?? 0; ; attempt++) {
    try {
      return await clients[attempt % clients.length]!.ask<CounterState>(ref, { get: true }, opts.askMs, opts.askMs);
    } catch (err) {
      if (!isRetryable(err) || performance.now() >= until) throw err;
    }
  }
}

export interface CounterCheck {
  counters: number;
  /** Sums over the counters asked. */
  value: number;
  count: number;
  /** One line per counter that differs from what was acknowledged. */
  wrong: string[];
}

/**
 * Asks each of `ids` (default: every counter of the ledger), round robin over `clients`,
 * `concurrency` at a time, and compares it with what was acknowledged.
 */
export async function checkCounters(clients: CeiClient[], ledger: CounterLedger, ids = ledger.ids(), concurrency = 32): Promise<CounterCheck> {
  const wrong: string[] = [];
  let value = 0;
  let count = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      const got = await getCounter(clients, counterRef(id), { askMs: 5_000, giveUpMs: 30_000, first: i });
      const want = ledger.expected(id);
      value += got.value;
      count += got.count;
      if (got.value !== want.value || got.count !== want.count) wrong.push(`${id}: ${JSON.stringify(got)}, acknowledged ${JSON.stringify(want)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return { counters: ids.length, value, count, wrong };
}

/** `check`'s mismatches as one line: how many counters differ, the tells applied, and a few examples. */
export function describeMismatch(check: CounterCheck, ledger: CounterLedger, ids = ledger.ids()): string {
  let acked = 0;
  for (const id of ids) acked += ledger.expected(id).count;
  return `${check.wrong.length} of ${check.counters} counters differ from what was acknowledged (${check.count} tells applied, ${acked} acknowledged), e.g. ${check.wrong.slice(0, 3).join('; ')}`;
}

/** checkCounters, rejecting when any counter differs from what was acknowledged. */
export async function verifyCounters(clients: CeiClient[], ledger: CounterLedger, ids = ledger.ids(), concurrency = 32): Promise<CounterCheck> {
  const check = await checkCounters(clients, ledger, ids, concurrency);
  if (check.wrong.length > 0) throw new Error(describeMismatch(check, ledger, ids));
  return check;
}
