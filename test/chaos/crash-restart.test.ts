import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { CeiClient, tellMany } from '../../src/client.js';
import { RETRYABLE_CODES } from '../../src/api/status.js';
import { removeDir, startNode, tempDir } from '../support/node-process.js';

const COUNTERS = 40;
const TELLS = 4000;
const KILL_CYCLES = 6;
const SENDERS = 16;
const STREAMS = 2;
const STREAM_BATCH = 200;

/** A seeded generator, so a failing run can be replayed with the same kill moments and payloads. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('crash: SIGKILL of a node while clients send', () => {
  it(`loses and doubles nothing over ${KILL_CYCLES} kill cycles`, async () => {
    const seed = Number(process.env.CEI_CHAOS_SEED ?? Date.now() % 100_000);
    const random = rng(seed);
    const dir = tempDir('cei-crash-');
    const items = Array.from({ length: TELLS }, (_, i) => ({
      to: { type: 'counter', id: `c-${i % COUNTERS}` },
      add: 1 + Math.floor(random() * 9),
      id: `m-${i}`,
    }));
    const acked = new Set<number>();
    let pending = items.map((_, i) => i);
    try {
      for (let cycle = 0; cycle <= KILL_CYCLES; cycle++) {
        const node = await startNode({ dataDir: dir });
        const client = new CeiClient(node.address);
        const last = cycle === KILL_CYCLES;
        // Kill a random few ms after a random number of tells were acknowledged in this cycle, so the
        // kill lands mid-traffic: between a batch's fsync and its acks as often as anywhere else.
        const killAfter = acked.size + 100 + Math.floor(random() * 400);
        const killDelayMs = Math.floor(random() * 15);
        let killed = false;
        let killScheduled = false;
        const maybeKill = (): void => {
          if (last || killScheduled || acked.size < killAfter) return;
          killScheduled = true;
          setTimeout(() => {
            killed = true;
            node.kill('SIGKILL');
          }, killDelayMs);
        };
        const queue = pending;
        pending = [];
        const sender = async (): Promise<void> => {
          for (let i = queue.pop(); i !== undefined; i = queue.pop()) {
            if (killed) {
              pending.push(i);
              continue;
            }
            const item = items[i]!;
            try {
              await client.tell(item.to, { add: item.add }, item.id, 5_000);
              acked.add(i);
              maybeKill();
            } catch (err) {
              const code = (err as grpc.ServiceError).code;
              if (!RETRYABLE_CODES.has(code) && code !== grpc.status.CANCELLED && code !== grpc.status.INTERNAL) throw err;
              // Not acknowledged: send it again, with the same id, after the restart.
              pending.push(i);
              killed = true;
            }
          }
        };
        // Streams keep hundreds of tells in flight: many are durable but not yet acknowledged at the kill.
        const streamer = async (): Promise<void> => {
          while (!killed && queue.length > 0) {
            const batch = queue.splice(Math.max(0, queue.length - STREAM_BATCH));
            const sent = tellMany(client.actors, batch.map((i) => ({ to: items[i]!.to, payload: { add: items[i]!.add }, messageId: items[i]!.id })), 10_000);
            try {
              await sent;
            } catch {
              killed = true;
            }
            const ok = sent.acked();
            for (const i of batch.slice(0, ok)) acked.add(i);
            pending.push(...batch.slice(ok));
            maybeKill();
          }
        };
        await Promise.all([...Array.from({ length: SENDERS }, sender), ...Array.from({ length: STREAMS }, streamer)]);
        client.close();
        if (last) {
          expect(pending, `seed ${seed}`).toEqual([]);
          const verify = await startVerifier(node.address, items, seed);
          expect(await node.stop()).toBe(0);
          expect(verify.mismatches, `seed ${seed}`).toEqual([]);
        } else {
          node.kill('SIGKILL');
          await node.exited;
        }
      }
      expect(acked.size).toBe(TELLS);
    } finally {
      removeDir(dir);
    }
  });
});

async function startVerifier(address: string, items: Array<{ to: { type: string; id: string }; add: number }>, seed: number) {
  const client = new CeiClient(address);
  const expected = new Map<string, { value: number; count: number }>();
  for (const item of items) {
    const e = expected.get(item.to.id) ?? { value: 0, count: 0 };
    e.value += item.add;
    e.count += 1;
    expected.set(item.to.id, e);
  }
  const mismatches: string[] = [];
  for (const [id, want] of expected) {
    const got = await client.ask<{ value: number; count: number }>({ type: 'counter', id }, { get: true }, 10_000);
    if (got.value !== want.value || got.count !== want.count) {
      mismatches.push(`counter/${id}: got ${JSON.stringify(got)}, acknowledged ${JSON.stringify(want)} (seed ${seed})`);
    }
  }
  client.close();
  return { mismatches };
}
