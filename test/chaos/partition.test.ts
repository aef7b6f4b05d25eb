/**
 * Partition: one node of a 3-voter cluster is cut off from the other two over real TCP (each node
 * dials its peers through its own HTTP CONNECT proxy, which the test controls; see
 * test/support/partition.ts), while clients send tells with unique ids to 100 counters.
 *
 * The isolated node must fence itself (Members says fenced, tells get UNAVAILABLE) and acknowledge
 * nothing while fenced; the majority must declare it down and keep acknowledging tells for the
 * counters it owned; after healing, the isolated node rejoins with a new incarnation, every node sees
 * all three up, and every counter holds exactly what was acknowledged (unacknowledged tells are
 * retried with their same ids until acknowledged).
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { RETRYABLE_CODES } from '../../src/api/status.js';
import { refKey } from '../../src/runtime/ref.js';
import type { MembersReply__Output } from '../../src/generated/cei/v1/MembersReply.js';
import { TestCluster } from '../support/cluster.js';
import { ConnectProxy } from '../support/connect-proxy.js';
import { heal, partition, proxyEnv, unlinkedPairs, waitForStatusesOn } from '../support/partition.js';
import { waitFor } from '../support/wait.js';

const COUNTERS = 100;
/** Senders through the majority side (and, after healing, through any node). */
const MAJORITY_SENDERS = 10;
/** Senders through the node that gets cut off. */
const ISOLATED_SENDERS = 2;
/** Share of new tells that go to the counters the isolated node owns. */
const BUSY_SHARE = 0.7;
const TELL_DEADLINE_MS = 3_000;
/** Tells acknowledged by the majority for the isolated node's counters after it was declared down. */
const FAILOVER_ACKS = 200;
/** Replies the isolated node gives to tells sent to it after it reported fenced, before healing. */
const FENCED_REPLIES = 20;
/** Tells acknowledged after the cluster reconverged, before the final drain (hand-back under load). */
const AFTER_HEAL_ACKS = 200;
/** Every tell acknowledged (retried with its id as needed) within this long after traffic stops. */
const DRAIN_MS = 30_000;

/** A seeded generator, so a failing run can be replayed (CEI_CHAOS_SEED). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Item {
  id: string;
  counter: string;
  add: number;
  acked: boolean;
  /** Node that acknowledged it, and when (test clock). */
  ackedBy?: number;
  sentAt?: number;
  ackAt?: number;
  /** Every send of it: node, sent and answered (test clock), and the answer. */
  attempts: Array<{ node: number; sentAt: number; doneAt: number; code: number | 'ok' }>;
}

/** One tell sent to the isolated node, whatever became of it. */
interface Attempt {
  item: string;
  sentAt: number;
  doneAt: number;
  code: number | 'ok';
}

const ref = (id: string) => ({ type: 'ledger', id });
const LEDGER_ACTORS = resolve(import.meta.dirname, '../support/actors/ledger.js');

describe('partition: one node cut off from the other two', () => {
  it('fences the minority, fails over to the majority, and keeps every counter exact after healing', { timeout: 90_000 }, async () => {
    const seed = Number(process.env.CEI_CHAOS_SEED ?? Date.now() % 100_000);
    const random = rng(seed);
    const started = Date.now();
    const proxies = await Promise.all([0, 1, 2].map(() => ConnectProxy.start()));
    const logLevel = process.env.CEI_PARTITION_LOG ? ['--log-level', process.env.CEI_PARTITION_LOG] : [];
    const cluster = new TestCluster(
      (['bootstrap', 'control', 'control'] as const).map((role, i) => ({ role, env: proxyEnv(proxies[i]!), args: ['--actors', LEDGER_ACTORS, ...logLevel] })),
    );
    const t = (ms: number): string => `${ms} ms`;
    try {
      await cluster.startAll();
      const tStarted = Date.now();
      const n = cluster.ids.length;
      // Every pair of nodes is linked through a proxy: grpc-js honoured grpc_proxy, so cutting works.
      await waitFor(() => unlinkedPairs(cluster, proxies).length === 0, { timeoutMs: 10_000, what: 'a proxied tunnel between every pair of nodes' });

      const items: Item[] = [];
      let nextId = 0;
      const newItem = (counter: string): Item => {
        const item: Item = { id: `m-${nextId++}`, counter, add: 1 + Math.floor(random() * 9), acked: false, attempts: [] };
        items.push(item);
        return item;
      };
      const counters = Array.from({ length: COUNTERS }, (_, k) => `p-${k}`);

      // Warm-up: every counter exists, then its owner is known. (Generous deadline: the first tells
      // of a fresh cluster wait for the start-up hand-offs; the time is printed below.)
      await Promise.all(
        counters.map(async (c, k) => {
          const item = newItem(c);
          await cluster.client(k % n).tell(ref(c), { add: item.add, id: item.id }, item.id, 20_000);
          item.acked = true;
          item.ackedBy = k % n;
        }),
      );
      const owners = new Map<string, string>();
      for (const c of counters) owners.set(c, (await cluster.client(0).describe(ref(c), 10_000)).node);
      const owning = [...new Set(owners.values())].map((id) => cluster.ids.indexOf(id));
      const victim = owning[Math.floor(random() * owning.length)]!;
      const victimId = cluster.ids[victim]!;
      const majority = [0, 1, 2].filter((i) => i !== victim);
      const busy = counters.filter((c) => owners.get(c) === victimId);
      const calm = counters.filter((c) => owners.get(c) !== victimId);
      expect(busy.length).toBeGreaterThan(0);
      const tWarm = Date.now();
      const incarnationBefore = Number((await cluster.client(0).members()).members.find((m) => m.id === victimId)!.incarnation);

      // --- traffic -------------------------------------------------------------------------------
      let generating = true;
      let healed = false;
      let inFlight = 0;
      const retry: Item[] = [];
      const unexpected: string[] = [];
      const toIsolated: Attempt[] = [];
      const pick = (): string => {
        const pool = random() < BUSY_SHARE && busy.length > 0 ? busy : calm.length > 0 ? calm : busy;
        return pool[Math.floor(random() * pool.length)]!;
      };
      const send = async (item: Item, node: number): Promise<void> => {
        const sentAt = Date.now();
        inFlight++;
        try {
          await cluster.client(node).tell(ref(item.counter), { add: item.add, id: item.id }, item.id, TELL_DEADLINE_MS);
          const ackAt = Date.now();
          item.attempts.push({ node, sentAt, doneAt: ackAt, code: 'ok' });
          if (node === victim) toIsolated.push({ item: item.id, sentAt, doneAt: ackAt, code: 'ok' });
          if (!item.acked) {
            item.acked = true;
            item.ackedBy = node;
            item.sentAt = sentAt;
            item.ackAt = ackAt;
          }
        } catch (err) {
          const code = (err as grpc.ServiceError).code;
          item.attempts.push({ node, sentAt, doneAt: Date.now(), code });
          if (node === victim) toIsolated.push({ item: item.id, sentAt, doneAt: Date.now(), code });
          if (!RETRYABLE_CODES.has(code)) unexpected.push(`${item.id} via node ${node}: ${(err as Error).message}`);
          // Not acknowledged: sent again, with the same id, by a sender of the live side.
          retry.push(item);
        } finally {
          inFlight--;
        }
      };
      let rr = 0;
      const majoritySender = async (): Promise<void> => {
        for (;;) {
          if (unexpected.length > 0) return;
          const item = retry.shift() ?? (generating ? newItem(pick()) : undefined);
          if (!item) {
            if (inFlight === 0 && retry.length === 0) return;
            // Tells in flight may still fail and need a retry: look again in a moment.
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          const nodes = healed ? [0, 1, 2] : majority;
          await send(item, nodes[rr++ % nodes.length]!);
        }
      };
      const isolatedSender = async (): Promise<void> => {
        while (generating && unexpected.length === 0) await send(newItem(pick()), victim);
      };
      const ackedCount = (): number => items.reduce((k, i) => k + (i.acked ? 1 : 0), 0);
      const traffic = Promise.all([
        ...Array.from({ length: MAJORITY_SENDERS }, majoritySender),
        ...Array.from({ length: ISOLATED_SENDERS }, isolatedSender),
      ]);

      // --- cut, at a random moment under load ------------------------------------------------------
      const cutAfter = ackedCount() + 200 + Math.floor(random() * 400);
      await waitFor(() => ackedCount() >= cutAfter || unexpected.length > 0, { timeoutMs: 20_000, what: `${cutAfter} tells acknowledged` });
      const tCut = Date.now();
      partition(cluster, proxies, [victim], majority);

      let fencedReply: MembersReply__Output | undefined;
      const fenced = waitFor<number | undefined>(
        async () => {
          const r = await cluster.client(victim).members(1_000).catch(() => undefined);
          if (r?.fenced) fencedReply = r;
          return r?.fenced ? Date.now() : undefined;
        },
        { timeoutMs: 10_000, what: `node ${victim} reports itself fenced` },
      ) as Promise<number>;
      const down = waitForStatusesOn(cluster, majority, { [victimId]: 'down' }, 10_000).then((replies) => ({ at: Date.now(), replies }));
      const [tFence, { at: tDown, replies: majorityReplies }] = await Promise.all([fenced, down]);
      for (const r of majorityReplies) expect(r.fenced, `majority node ${r.node} fenced`).toBe(false);
      expect(fencedReply!.node).toBe(victimId);

      // The fenced node answers tells UNAVAILABLE: for a counter it owned, and for one it would forward.
      const probes = [busy[0]!, calm[0]].filter((c): c is string => c !== undefined).map((c) => newItem(c));
      const probeCodes: Array<number | 'ok'> = [];
      for (const probe of probes) {
        const sentAt = Date.now();
        try {
          await cluster.client(victim).tell(ref(probe.counter), { add: probe.add, id: probe.id }, probe.id, TELL_DEADLINE_MS);
          probeCodes.push('ok');
          probe.acked = true;
          probe.ackedBy = victim;
          probe.sentAt = sentAt;
          probe.ackAt = Date.now();
        } catch (err) {
          probeCodes.push((err as grpc.ServiceError).code);
          retry.push(probe);
        }
      }

      // The majority keeps acknowledging tells for the counters the isolated node owned.
      const busySet = new Set(busy);
      const failoverAcks = (): Item[] => items.filter((i) => i.acked && i.ackedBy !== victim && busySet.has(i.counter) && i.sentAt! > tDown);
      await waitFor(() => failoverAcks().length >= FAILOVER_ACKS || unexpected.length > 0, {
        timeoutMs: 15_000,
        what: `${FAILOVER_ACKS} tells for the isolated node's counters acknowledged by the majority`,
      });
      // ... while the isolated node keeps answering the tells sent to it.
      await waitFor(() => toIsolated.filter((a) => a.sentAt >= tFence).length >= FENCED_REPLIES || unexpected.length > 0, {
        timeoutMs: 15_000,
        what: `${FENCED_REPLIES} replies from the fenced node`,
      });
      const firstBusyAck = Math.min(
        ...items.filter((i) => i.acked && i.ackedBy !== victim && busySet.has(i.counter) && i.sentAt! > tCut).map((i) => i.ackAt!),
      );

      // --- heal ------------------------------------------------------------------------------------
      const tHeal = Date.now();
      heal(cluster, proxies, [victim], majority);
      await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])), 20_000);
      await waitFor(async () => (await cluster.client(victim).members(1_000)).fenced === false, { timeoutMs: 10_000, what: 'isolated node unfenced' });
      const tUp = Date.now();
      healed = true;
      const views = await Promise.all([0, 1, 2].map((i) => cluster.client(i).members()));
      for (const v of views) {
        const me = v.members.find((m) => m.id === victimId)!;
        expect(Number(me.incarnation), `incarnation of the rejoined node seen by ${v.node}`).toBeGreaterThan(incarnationBefore);
      }

      // Traffic through every node while the counters move back, then the final drain.
      const ackedAtHeal = ackedCount();
      await waitFor(() => ackedCount() >= ackedAtHeal + AFTER_HEAL_ACKS || unexpected.length > 0, {
        timeoutMs: 15_000,
        what: `${AFTER_HEAL_ACKS} tells acknowledged after healing`,
      });
      generating = false;
      const drainTimer = setTimeout(() => unexpected.push(`tells still unacknowledged ${DRAIN_MS} ms after traffic stopped`), DRAIN_MS);
      await traffic;
      clearTimeout(drainTimer);
      const tDrained = Date.now();
      expect(unexpected, `seed ${seed}`).toEqual([]);
      expect(items.filter((i) => !i.acked).map((i) => i.id), `seed ${seed}`).toEqual([]);

      // --- verify ----------------------------------------------------------------------------------
      // Each ledger keeps the ids it applied: every acknowledged tell exactly once, nothing else.
      const byId = new Map(items.map((i) => [i.id, i]));
      const expected = new Map<string, Item[]>(counters.map((c) => [c, []]));
      for (const item of items) expected.get(item.counter)!.push(item);
      const since = (at: number | undefined): string => (at === undefined ? '?' : `${at - tCut} ms`);
      const describeItem = (id: string): string => {
        const i = byId.get(id);
        if (!i) return `${id} (never sent)`;
        const tries = i.attempts.map((a) => `node ${a.node} ${since(a.sentAt)}..${since(a.doneAt)} ${a.code === 'ok' ? 'OK' : grpc.status[a.code]}`);
        return `${id} (acked by node ${i.ackedBy}; sends, relative to the cut: ${tries.join(', ') || 'warm-up only'})`;
      };
      const mismatches: string[] = [];
      await Promise.all(
        counters.map(async (c, k) => {
          const got = await cluster.client(k % n).ask<{ value: number; ids: string[] }>(ref(c), { get: true }, 10_000);
          const want = new Set(expected.get(c)!.map((i) => i.id));
          const seen = new Set<string>();
          const doubled = got.ids.filter((id) => seen.size === seen.add(id).size);
          const lost = [...want].filter((id) => !seen.has(id));
          const stray = [...seen].filter((id) => !want.has(id));
          if (lost.length + doubled.length + stray.length > 0) {
            const owned = busySet.has(c) ? ' (isolated node owned it)' : '';
            mismatches.push(`${refKey(ref(c))}${owned}: lost ${lost.map(describeItem).join(', ') || 'none'}; doubled ${doubled.join(', ') || 'none'}; not sent here ${stray.join(', ') || 'none'}`);
          }
        }),
      );

      // Nothing acknowledged by the isolated node from the moment it said it was fenced until healing.
      const ackedWhileFenced = toIsolated.filter((a) => a.code === 'ok' && a.doneAt >= tFence && a.doneAt <= tHeal);
      const ackedAfterCut = toIsolated.filter((a) => a.code === 'ok' && a.doneAt >= tCut && a.doneAt < tFence);
      // Replies to tells sent to the isolated node once it had reported fenced, before healing.
      const codesWhileFenced = new Map<string, number>();
      for (const a of toIsolated) {
        if (a.sentAt < tFence || a.doneAt > tHeal) continue;
        const name = a.code === 'ok' ? 'OK' : grpc.status[a.code]!;
        codesWhileFenced.set(name, (codesWhileFenced.get(name) ?? 0) + 1);
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        [
          `partition (seed ${seed}): node ${victim} (${victimId}, owner of ${busy.length}/${COUNTERS} counters) cut off; ${items.length} tells, all acknowledged; ${seconds} s in all`,
          `  cluster up in ${t(tStarted - started)}, warm-up (first tell to each counter, describe) ${t(tWarm - tStarted)}`,
          `  time to fence (cut -> Members says fenced): ${t(tFence - tCut)}`,
          `  time to down (cut -> both majority nodes say down): ${t(tDown - tCut)}`,
          `  first tell for an isolated counter acknowledged by the majority: ${t(firstBusyAck - tCut)} after the cut`,
          `  time to reconverge (heal -> all up everywhere, unfenced): ${t(tUp - tHeal)}; drain after: ${t(tDrained - tUp)}`,
          `  to the isolated node: ${ackedAfterCut.length} acked between cut and fence; replies to tells sent while it was fenced: ${JSON.stringify(Object.fromEntries(codesWhileFenced))}`,
          `  partition lasted ${t(tHeal - tCut)}; ${failoverAcks().length} tells for its counters acknowledged by the majority after the down`,
          `  cut at ${new Date(tCut).toISOString()}, fenced +${tFence - tCut} ms, down +${tDown - tCut} ms, healed +${tHeal - tCut} ms, up +${tUp - tCut} ms`,
          `  proxies: ${proxies.map((p, i) => `${i}: ${JSON.stringify(p.counts)}`).join('; ')}`,
        ].join('\n'),
      );

      expect(
        {
          mismatches: mismatches.sort(),
          ackedWhileFenced,
          probesToTheFencedNode: probeCodes.map((c) => (c === 'ok' ? 'OK' : grpc.status[c])),
          repliesWhileFenced: [...codesWhileFenced.keys()],
        },
        `seed ${seed}`,
      ).toEqual({ mismatches: [], ackedWhileFenced: [], probesToTheFencedNode: probes.map(() => 'UNAVAILABLE'), repliesWhileFenced: ['UNAVAILABLE'] });
    } catch (err) {
      // What each node saw, and its log (without grpc-js' line per refused CONNECT) in full on disk.
      for (const [i, p] of cluster.procs.entries()) {
        const view = await cluster.client(i).members(1_000).then(
          (r) => `${r.fenced ? 'fenced; ' : ''}${r.members.map((m) => `${m.id}=${m.status}@${m.incarnation}`).join(' ')}`,
          (e: Error) => e.message,
        );
        const lines = (p?.stderr() ?? '').split('\n');
        const log = lines.filter((l) => !/^E .*through proxy .* with status 503$/.test(l)).join('\n');
        const file = join(tmpdir(), `cei-partition-node-${i}.log`);
        writeFileSync(file, log);
        console.error(`--- node ${i} (${cluster.ids[i]}): ${view}\n--- stderr (${file}), last 4000 chars:\n${log.slice(-4000)}`);
      }
      throw err;
    } finally {
      await cluster.destroy();
      await Promise.all(proxies.map((p) => p.close()));
    }
  });
});
