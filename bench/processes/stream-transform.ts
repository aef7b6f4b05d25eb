/**
 * Stream publish-to-delivery through one transform, on a real cluster (a bootstrap and one worker,
 * `node dist/cli.js node`, see ../cluster/local-cluster.ts):
 *
 * - `placeTransform`: a `window-average` process scheduled through the dispatcher with
 *   `{inputs: [input], output, window: 10}`; resolves once it is RUNNING on the worker.
 * - `publishToDelivery`: `count` messages `{time: k, temperature, salinity}` (k = 0..count-1, seconds)
 *   are published to `input` through src/client-streams.ts in batches of `batch`, `inFlight` calls at
 *   once, as fast as the node takes them, while one Subscribe (from earliest) reads `output`. The
 *   send time of message k is kept here; a delivery whose data has time k is message k's (the
 *   window average echoes the input's time, one output per input). Throughput is `count` over first
 *   publish to last delivery; latency is each message's publish call start to its delivery. Every
 *   k must arrive exactly once, else the measurement fails. With `output === input` the same run is
 *   the raw stream: subscribe to what is published, no transform.
 */
import { performance } from 'node:perf_hooks';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { StreamsClient } from '../../src/client-streams.js';
import { summarize, type LatencySummary } from '../support/percentiles.js';
import { sleep } from '../epu/epu-node.js';

export interface DeliveryResult {
  count: number;
  /** First publish call to the last delivery. */
  ms: number;
  rate: number;
  /** First publish call to the last publish answered. */
  publishMs: number;
  latency: LatencySummary;
}

export const WINDOW_DEFINITION = { id: 'wavg', type: 'window-average', executable: {} };

/** Schedules the transform and waits until it is RUNNING; returns the node it runs on. */
export async function placeTransform(dispatcher: DispatcherClient, o: { upid: string; input: string; output: string; window: number; timeoutMs: number }): Promise<string> {
  await dispatcher.createDefinition(WINDOW_DEFINITION);
  await dispatcher.schedule({ upid: o.upid, definitionId: WINDOW_DEFINITION.id, configuration: { inputs: [o.input], output: o.output, window: o.window } });
  const p = await dispatcher.wait(o.upid, ['RUNNING'], o.timeoutMs);
  return p.assigned?.nodeId ?? '';
}

/** Waits until the dispatcher lists `n` agents. */
export async function waitForAgents(dispatcher: DispatcherClient, n: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await dispatcher.status(5_000).catch(() => undefined);
    if (s && s.agents.length >= n) return;
    if (performance.now() > deadline) throw new Error(`${s?.agents.length ?? 0} of ${n} agents heartbeating within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function publishToDelivery(
  streams: StreamsClient,
  o: { input: string; output: string; subscription: string; count: number; batch: number; inFlight: number; timeoutMs: number },
): Promise<DeliveryResult> {
  const sentAt = new Float64Array(o.count).fill(Number.NaN);
  const latencies = new Float64Array(o.count);
  let delivered = 0;
  let lastAt = 0;
  const sub = streams.subscribe(o.output, o.subscription, { from: 'earliest' });
  let failure: Error | undefined;
  const reading = (async () => {
    for await (const m of sub.messages) {
      const now = performance.now();
      const k = (m.data as { time?: unknown }).time;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= o.count || Number.isNaN(sentAt[k]!) || latencies[k] !== 0) {
        failure ??= new Error(`unexpected delivery at offset ${m.offset}: ${JSON.stringify(m.data).slice(0, 200)}`);
        break;
      }
      latencies[k] = Math.max(now - sentAt[k]!, Number.MIN_VALUE);
      lastAt = now;
      if (++delivered === o.count) break;
    }
  })();
  try {
    // The subscription exists (and so the output stream) before the first publish.
    await sleep(200);
    const batches = Math.ceil(o.count / o.batch);
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: o.inFlight }, async () => {
        while (next < batches && failure === undefined) {
          const b = next++;
          const from = b * o.batch;
          const to = Math.min(o.count, from + o.batch);
          const messages = [];
          for (let k = from; k < to; k++) messages.push({ time: k, temperature: 10 + (k % 17) / 4, salinity: 35 + (k % 11) / 10 });
          const at = performance.now();
          sentAt.fill(at, from, to);
          await streams.publish(o.input, messages, {}, 30_000);
        }
      }),
    );
    const publishMs = performance.now() - t0;
    const done = await Promise.race([reading.then(() => true), sleep(o.timeoutMs).then(() => false)]);
    if (failure) throw failure;
    if (!done || delivered !== o.count) throw new Error(`${delivered} of ${o.count} messages delivered within ${o.timeoutMs} ms of the last publish`);
    const ms = lastAt - t0;
    return { count: o.count, ms, rate: (o.count * 1000) / ms, publishMs, latency: summarize(latencies) };
  } finally {
    sub.close();
    await reading.catch(() => undefined);
  }
}
