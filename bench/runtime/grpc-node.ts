import { performance } from 'node:perf_hooks';
import { CeiClient, tellMany } from '../../src/client.js';
import type { TellReply__Output } from '../../src/generated/cei/v1/TellReply.js';
import { runClosedLoop } from '../support/closed-loop.js';
import { summarize, type LatencySummary } from '../support/percentiles.js';

export interface GrpcTellResult {
  /** Tells acknowledged per second within the window. */
  rate: number;
  latency: LatencySummary;
  windowMs: number;
  /** Tells acknowledged in all (warmup and drain included). */
  sent: number;
}

const counterRefs = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ type: 'counter', id: `${prefix}${i}` }));

/** Unary Tell with `concurrency` calls in flight, `{"add": 1}` round robin over `actors` counters. */
export async function grpcTells(client: CeiClient, opts: { actors: number; concurrency: number; warmupMs: number; durationMs: number }): Promise<GrpcTellResult> {
  const refs = counterRefs('tell-', opts.actors);
  const loop = await runClosedLoop({
    concurrency: opts.concurrency,
    warmupMs: opts.warmupMs,
    durationMs: opts.durationMs,
    latencies: true,
    op: (i) => client.tell(refs[i % refs.length]!, { add: 1 }),
  });
  return { rate: loop.rate, latency: summarize(loop.latencies), windowMs: opts.durationMs, sent: loop.started };
}

/**
 * Sums the counts of counters `prefix0..` through gRPC Ask (after every tell was acknowledged), so a
 * figure can show that the node handled every tell it acknowledged.
 */
export async function countersTotal(client: CeiClient, prefix: string, actors: number, concurrency = 32): Promise<number> {
  const refs = counterRefs(prefix, actors);
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < refs.length) {
      const state = await client.ask<{ count: number }>(refs[next++]!, { get: true });
      total += state.count;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total;
}

/**
 * One TellStream from one client: keeps up to `window` tells unacknowledged (writing more whenever
 * the replies bring that below half), `{"add": 1}` round robin over `actors` counters, for warmup +
 * duration; then ends the stream and waits for every reply. Counts the replies within the window.
 * Bounded by unacknowledged tells, as src/client.ts tellMany is: grpc-js keeps a call's unsent
 * messages in a buffer it re-slices per message, so a client that writes far ahead of the node spends
 * its CPU there (and write()'s return value does not stop it from writing ahead).
 */
export function grpcTellStream(
  client: CeiClient,
  opts: { actors: number; window: number; warmupMs: number; durationMs: number; deadlineMs: number },
): Promise<{ rate: number; sent: number; windowMs: number }> {
  const payloads = counterRefs('stream-', opts.actors).map((to) => ({ to, payload: Buffer.from(JSON.stringify({ add: 1 })), message_id: '' }));
  return new Promise((resolve, reject) => {
    const begin = performance.now();
    const windowStart = begin + opts.warmupMs;
    const windowEnd = windowStart + opts.durationMs;
    const call = client.actors.TellStream({ deadline: Date.now() + opts.deadlineMs });
    let written = 0;
    let replies = 0;
    let inWindow = 0;
    let ended = false;
    const pump = (): void => {
      if (ended) return;
      if (performance.now() >= windowEnd) {
        ended = true;
        call.end();
        return;
      }
      while (written - replies < opts.window) call.write(payloads[written++ % payloads.length]);
    };
    call.on('data', (_reply: TellReply__Output) => {
      replies++;
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) inWindow++;
      if (written - replies < opts.window / 2) pump();
    });
    call.on('error', (err) => reject(new Error(`TellStream failed after ${replies} of ${written} replies: ${err.message}`)));
    call.on('end', () => {
      if (replies !== written) reject(new Error(`TellStream ended after ${replies} of ${written} replies`));
      else resolve({ rate: (inWindow * 1000) / opts.durationMs, sent: written, windowMs: opts.durationMs });
    });
    pump();
  });
}

/**
 * src/client.ts tellMany as a user would call it (its own window): `count` tells over one
 * TellStream, timed from the call to the last reply.
 */
export async function grpcTellMany(client: CeiClient, opts: { actors: number; count: number }): Promise<{ rate: number; elapsedMs: number }> {
  const refs = counterRefs('many-', opts.actors);
  const items = Array.from({ length: opts.count }, (_, i) => ({ to: refs[i % refs.length]!, payload: { add: 1 } }));
  const begin = performance.now();
  const seqs = await tellMany(client.actors, items);
  const elapsedMs = performance.now() - begin;
  if (seqs.length !== opts.count) throw new Error(`tellMany returned ${seqs.length} seqs for ${opts.count} tells`);
  return { rate: (opts.count * 1000) / elapsedMs, elapsedMs };
}

/** One caller asking `{"get": true}` of one counter, one ask at a time. */
export async function grpcAsks(client: CeiClient, opts: { warmupMs: number; durationMs: number }): Promise<{ rate: number; latency: LatencySummary }> {
  const ref = { type: 'counter', id: 'ask-target' };
  await client.spawn(ref, { value: 0 });
  const loop = await runClosedLoop({
    concurrency: 1,
    warmupMs: opts.warmupMs,
    durationMs: opts.durationMs,
    latencies: true,
    op: () => client.ask(ref, { get: true }),
  });
  return { rate: loop.rate, latency: summarize(loop.latencies) };
}
