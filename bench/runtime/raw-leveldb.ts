import { performance } from 'node:perf_hooks';
import { Level } from 'level';

export interface RawBatchResult {
  batches: number;
  puts: number;
  windowMs: number;
  putsPerSec: number;
  batchesPerSec: number;
  /** Milliseconds per synced batch write. */
  latencies: number[];
}

/**
 * The ceiling for durable mailboxes on this machine: one writer issuing chained batches of
 * `batchSize` puts, each written with {sync: true} (as the runtime's group commit does), one at a
 * time. Keys and values are shaped like mailbox entries.
 */
export async function rawSyncedBatches(dir: string, opts: { batchSize: number; warmupMs: number; durationMs: number }): Promise<RawBatchResult> {
  const db = new Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  try {
    const begin = performance.now();
    const windowStart = begin + opts.warmupMs;
    const windowEnd = windowStart + opts.durationMs;
    const latencies: number[] = [];
    let seq = 0;
    let batches = 0;
    for (;;) {
      const started = performance.now();
      if (started >= windowEnd) break;
      const batch = db.batch();
      for (let i = 0; i < opts.batchSize; i++) {
        const s = ++seq;
        const key = `a\x00probe\x00a${s % 1000}\x00m\x00${s.toString(16).padStart(16, '0')}`;
        batch.put(key, `{"s":${s},"p":{"t":${started}}}`);
      }
      await batch.write({ sync: true });
      const ended = performance.now();
      if (started >= windowStart) {
        batches++;
        latencies.push(ended - started);
      }
    }
    const puts = batches * opts.batchSize;
    return {
      batches,
      puts,
      windowMs: opts.durationMs,
      putsPerSec: (puts * 1000) / opts.durationMs,
      batchesPerSec: (batches * 1000) / opts.durationMs,
      latencies,
    };
  } finally {
    await db.close();
  }
}
