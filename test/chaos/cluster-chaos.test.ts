import { afterEach, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RETRYABLE_CODES } from '../../src/api/status.js';
import { TestCluster } from '../support/cluster.js';
import { seededRandom as rngFromSeed } from '../support/seeded-random.js';

/** Counters that keep the id of every tell they applied, so a wrong total names its tells. */
const LEDGER = ['--actors', resolve(import.meta.dirname, '../support/actors/ledger.js')];

/** Rounds and load: CEI_CHAOS_ROUNDS (npm run chaos -- N sets it); CI runs a short round. */
const ROUNDS = Number(process.env.CEI_CHAOS_ROUNDS ?? 3);
const COUNTERS = 200;
const TELLS_PER_ROUND = 1500;
const SENDERS = 24;
const STALL_MS = 30_000;

interface Item {
  id: string;
  to: { type: string; id: string };
  add: number;
}

/**
 * Sends `items` through random live nodes with `SENDERS` in flight; an unacknowledged tell goes back
 * in the queue and is sent again with the same id (through any live node), until all are acknowledged.
 */
async function sendAll(cluster: TestCluster, items: Item[], acked: Set<string>, random: () => number, during?: () => Promise<void>): Promise<void> {
  const queue = [...items];
  let failures = 0;
  // A run that stops making progress fails with what the stuck tells last heard, instead of hanging.
  let lastProgress = Date.now();
  const lastError = new Map<string, string>();
  let stalled: Error | undefined;
  const sender = async (): Promise<void> => {
    while (queue.length > 0 && !stalled) {
      if (Date.now() - lastProgress > STALL_MS) {
        const examples = [...lastError].slice(0, 5).map(([id, e]) => `${id}: ${e}`);
        stalled = new Error(`no tell acknowledged for ${STALL_MS} ms; ${queue.length} left; last errors:\n${examples.join('\n')}`);
        break;
      }
      const item = queue.pop()!;
      const live = cluster.live();
      const via = live[Math.floor(random() * live.length)]!;
      try {
        await cluster.client(via).tell(item.to, { add: item.add, id: item.id }, item.id, 10_000);
        acked.add(item.id);
        lastError.delete(item.id);
        lastProgress = Date.now();
      } catch (err) {
        const code = (err as grpc.ServiceError).code;
        if (!RETRYABLE_CODES.has(code) && code !== grpc.status.CANCELLED && code !== grpc.status.INTERNAL) throw err;
        failures++;
        lastError.set(item.id, `via ${cluster.ids[via]} to ${item.to.id}: ${(err as Error).message}`);
        queue.unshift(item);
        await new Promise((r) => setImmediate(r));
      }
    }
  };
  const duringDone = during?.();
  await Promise.all(Array.from({ length: SENDERS }, sender));
  if (stalled) throw stalled;
  await duringDone;
  expect(failures, 'retries are bounded').toBeLessThan(items.length * 5);
}

/** Waits until `n` tells were acknowledged; gives up with the senders' stall deadline. */
async function ackedAtLeast(acked: Set<string>, n: number): Promise<void> {
  let seen = acked.size;
  let since = Date.now();
  while (acked.size < n) {
    if (acked.size !== seen) [seen, since] = [acked.size, Date.now()];
    if (Date.now() - since > STALL_MS) throw new Error(`stuck at ${acked.size} acknowledged tells, waiting for ${n}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function verify(cluster: TestCluster, all: Item[], seed: number): Promise<void> {
  const want = new Map<string, Set<string>>();
  for (const item of all) {
    const ids = want.get(item.to.id) ?? new Set<string>();
    ids.add(item.id);
    want.set(item.to.id, ids);
  }
  const live = cluster.live();
  const wrong: string[] = [];
  let i = 0;
  for (const [id, ids] of want) {
    const got = await cluster.client(live[i++ % live.length]!).ask<{ value: number; ids: string[] }>({ type: 'ledger', id }, { get: true }, 10_000, 30_000);
    const seen = new Set<string>();
    const doubled = got.ids.filter((x) => seen.size === seen.add(x).size);
    const lost = [...ids].filter((x) => !seen.has(x));
    const stray = [...seen].filter((x) => !ids.has(x));
    if (lost.length + doubled.length + stray.length > 0) wrong.push(`ledger/${id}: lost ${lost.join(', ') || 'none'}; doubled ${doubled.join(', ') || 'none'}; not sent here ${stray.join(', ') || 'none'}`);
  }
  expect(wrong, `seed ${seed}`).toEqual([]);
}

describe('cluster chaos', () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it(`SIGKILL the owner of busy actors while clients send, restart it, kill another: ${ROUNDS} rounds, every tell applied once`, { timeout: 240_000 }, async () => {
    const seed = Number(process.env.CEI_CHAOS_SEED ?? Date.now() % 100_000);
    const random = rngFromSeed(seed);
    cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }], LEDGER);
    await cluster.startAll();
    const all: Item[] = [];
    const acked = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const items = Array.from({ length: TELLS_PER_ROUND }, (_, i) => ({
        id: `r${round}-${i}`,
        to: { type: 'ledger', id: `c-${Math.floor(random() * COUNTERS)}` },
        add: 1 + Math.floor(random() * 9),
      }));
      all.push(...items);
      // The owner of a busy counter dies mid-round, once some of the round's tells were acknowledged.
      const busy = items[0]!.to;
      const c = cluster;
      const killOwner = async (): Promise<void> => {
        const before = acked.size;
        await ackedAtLeast(acked, before + 200);
        const owner = (await c.client(c.live()[0]!).describe(busy)).node;
        const victim = c.ids.indexOf(owner);
        await c.kill(victim, 'SIGKILL');
        // Restart it later in the round, while tells keep flowing.
        await ackedAtLeast(acked, before + 600);
        await c.start(victim);
      };
      await sendAll(cluster, items, acked, random, killOwner);
      await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])), 30_000);
    }
    expect(acked.size).toBe(all.length);
    await verify(cluster, all, seed);
  });

  it('a node joins under load: actors rebalance onto it and nothing is lost or doubled', async () => {
    const seed = Number(process.env.CEI_CHAOS_SEED ?? Date.now() % 100_000);
    const random = rngFromSeed(seed);
    cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }, { role: 'worker' }], LEDGER);
    await cluster.start(0);
    await Promise.all([cluster.start(1), cluster.start(2)]);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));
    const items = Array.from({ length: 3000 }, (_, i) => ({
      id: `j-${i}`,
      to: { type: 'ledger', id: `c-${Math.floor(random() * COUNTERS)}` },
      add: 1 + Math.floor(random() * 9),
    }));
    const acked = new Set<string>();
    const c = cluster;
    const join = async (): Promise<void> => {
      await ackedAtLeast(acked, 800);
      await c.start(3);
    };
    await sendAll(cluster, items, acked, random, join);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));
    const owners = new Set<string>();
    for (let i = 0; i < 40; i++) owners.add((await cluster.client(0).describe({ type: 'ledger', id: `c-${i}` })).node);
    expect(owners.has(cluster.ids[3]!)).toBe(true);
    await verify(cluster, items, seed);
  });
});
