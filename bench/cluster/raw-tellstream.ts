import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { actorsClient, tellMany, type TellItem } from '../../src/client.js';
import { reapOnExit } from './exit-reaper.js';
import { startTsxServer } from '../support/tsx-server.js';

const SERVER = fileURLToPath(new URL('./raw-tellstream-server.ts', import.meta.url));

export interface RawTellStreamResult {
  /** Tells acknowledged per second, first write to last acknowledgement. */
  rate: number;
  tells: number;
  elapsedMs: number;
}

/**
 * The ceiling for one-message-per-tell clients on this machine: src/client.ts tellMany, `streams`
 * TellStreams at once, into a child process whose TellStream acknowledges every tell on arrival
 * (raw-tellstream-server.ts) - what grpc-js alone costs a tell on both ends, the building block
 * under `tells_r2`. An untimed `warmupTells` first, then `tells` timed.
 */
export async function rawTellStream(opts: { streams: number; actors: number; warmupTells: number; tells: number }): Promise<RawTellStreamResult> {
  const child = await startTsxServer(SERVER, 'raw TellStream server');
  reapOnExit(child.proc);
  const client = actorsClient(child.match[1]!);
  const run = async (total: number): Promise<number> => {
    const per = Math.ceil(total / opts.streams);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: opts.streams }, (_, s) => {
        const items: TellItem[] = Array.from({ length: per }, (_, i) => ({ to: { type: 'counter', id: `c${(s * per + i) % opts.actors}` }, payload: { add: 1 } }));
        return tellMany(client, items, 120_000);
      }),
    );
    return performance.now() - started;
  };
  let result: RawTellStreamResult;
  let exit: number | string;
  try {
    await run(opts.warmupTells);
    const elapsedMs = await run(opts.tells);
    const tells = Math.ceil(opts.tells / opts.streams) * opts.streams;
    result = { rate: (tells * 1000) / elapsedMs, tells, elapsedMs };
  } finally {
    client.close();
    exit = await child.stop();
  }
  if (exit !== 0) throw new Error(`raw TellStream server exited with ${exit}; stderr:\n${child.stderr()}`);
  return result;
}
