import { performance } from 'node:perf_hooks';

export interface ClosedLoopOptions {
  /** Operations in flight at once: each of this many workers starts its next one when the last ended. */
  concurrency: number;
  /** Operations run this long first without being counted (JIT, caches, LevelDB files). */
  warmupMs: number;
  /** Then operations ending within this window are counted. */
  durationMs: number;
  /** One operation; `i` numbers the operations of all workers from 0. */
  op: (i: number) => Promise<unknown>;
  /** Keep the latency of each counted operation (started and ended in the window). */
  latencies?: boolean;
  /** Told the window's bounds (performance.now() times) before the first operation starts. */
  onWindow?: (start: number, end: number) => void;
}

export interface ClosedLoopResult {
  /** Operations that ended within the window. */
  ops: number;
  /** Operations started in total (warmup and drain included). */
  started: number;
  windowMs: number;
  /** ops / window, per second. */
  rate: number;
  /** Milliseconds from start to end of each counted operation, when asked for. */
  latencies: number[];
}

/**
 * Drives `op` from `concurrency` workers for warmup + duration, then waits for the operations still
 * in flight. The first failing operation fails the run (once every worker has stopped).
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const begin = performance.now();
  const windowStart = begin + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;
  options.onWindow?.(windowStart, windowEnd);
  const latencies: number[] = [];
  let next = 0;
  let ops = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const started = performance.now();
      if (started >= windowEnd) return;
      try {
        await options.op(next++);
      } catch (err) {
        failure ??= err;
        return;
      }
      const ended = performance.now();
      if (ended >= windowStart && ended < windowEnd) {
        ops++;
        if (options.latencies && started >= windowStart) latencies.push(ended - started);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  if (failure !== undefined) throw failure;
  return { ops, started: next, windowMs: options.durationMs, rate: (ops * 1000) / options.durationMs, latencies };
}

export interface CountedLoopResult {
  count: number;
  elapsedMs: number;
  /** count / elapsed, per second. */
  rate: number;
}

/**
 * Runs `op` exactly `count` times from `concurrency` workers and times the whole, plus `settle`
 * (e.g. waiting until handlers saw every message) when given. Fails with the first failing operation.
 */
export async function runCounted(options: {
  concurrency: number;
  count: number;
  op: (i: number) => Promise<unknown>;
  settle?: () => Promise<void>;
}): Promise<CountedLoopResult> {
  const begin = performance.now();
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < options.count) {
      try {
        await options.op(next++);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.count) }, worker));
  if (failure !== undefined) throw failure;
  await options.settle?.();
  const elapsedMs = performance.now() - begin;
  return { count: options.count, elapsedMs, rate: (options.count * 1000) / elapsedMs };
}
