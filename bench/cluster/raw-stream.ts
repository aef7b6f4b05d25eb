import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { reapOnExit } from './exit-reaper.js';
import { peerClient, type PeerFrame, type PeerFrame__Output } from './peer-proto.js';
import { startTsxServer } from '../support/tsx-server.js';

const RECEIVER = fileURLToPath(new URL('./raw-stream-receiver.ts', import.meta.url));

export interface RawStreamResult {
  /** Messages acknowledged (durable on the receiver) per second within the window. */
  rate: number;
  /** Messages acknowledged within the window. */
  messages: number;
  windowMs: number;
  /** Batches written in all, and messages acknowledged in all (warmup and drain included). */
  batchesSent: number;
  acked: number;
}

/**
 * The ceiling for durable cross-node messages on this machine: one grpc-js bidi stream (cei's own
 * `cei.v1.Peer/Link` frames, with a cluster link's channel options) from this process into a
 * receiver child process, each write a "batch" frame of `perWrite` "msg" frames with a tell-sized
 * JSON body; the receiver group-commits them to LevelDB with synced batches and acknowledges each
 * durable group (raw-stream-receiver.ts). At most `inFlight` writes are unacknowledged. A message
 * counts once its acknowledgement came back within the window.
 */
export async function rawStream(
  dir: string,
  opts: { perWrite: number; inFlight: number; actors: number; warmupMs: number; durationMs: number },
): Promise<RawStreamResult> {
  const child = await startTsxServer(RECEIVER, 'raw stream receiver', [dir]);
  reapOnExit(child.proc);
  const client = peerClient(child.match[1]!);
  let result: RawStreamResult;
  let exit: number | string;
  try {
    result = await new Promise<RawStreamResult>((resolve, reject) => {
      const begin = performance.now();
      const windowStart = begin + opts.warmupMs;
      const windowEnd = windowStart + opts.durationMs;
      const call = client.Link({ deadline: Date.now() + opts.warmupMs + opts.durationMs + 60_000 });
      let seq = 0;
      let batches = 0;
      let ackedBatches = 0;
      let inWindow = 0;
      let ended = false;
      const batch = (): PeerFrame => {
        const frames: PeerFrame[] = new Array(opts.perWrite);
        for (let i = 0; i < opts.perWrite; i++) {
          const s = ++seq;
          const body = JSON.stringify({ ref: { type: 'counter', id: `c${s % opts.actors}` }, payload: { add: 1 }, opts: {} });
          frames[i] = { kind: 'msg', id: s, method: `counter\x00c${s % opts.actors}`, body: Buffer.from(body, 'utf8') };
        }
        return { kind: 'batch', id: ++batches, frames };
      };
      const pump = (): void => {
        if (ended) return;
        if (performance.now() >= windowEnd) {
          ended = true;
          call.end();
          return;
        }
        while (batches - ackedBatches < opts.inFlight) call.write(batch());
      };
      call.on('data', (ack: PeerFrame__Output) => {
        const upTo = Number(ack.id);
        const now = performance.now();
        if (now >= windowStart && now < windowEnd) inWindow += (upTo - ackedBatches) * opts.perWrite;
        ackedBatches = upTo;
        if (batches - ackedBatches <= opts.inFlight / 2) pump();
      });
      call.on('error', (err) => reject(new Error(`raw stream failed after ${ackedBatches} of ${batches} batches: ${err.message}`)));
      call.on('end', () => {
        if (ackedBatches !== batches) reject(new Error(`raw stream ended after ${ackedBatches} of ${batches} batches were acknowledged`));
        else
          resolve({
            rate: (inWindow * 1000) / opts.durationMs,
            messages: inWindow,
            windowMs: opts.durationMs,
            batchesSent: batches,
            acked: ackedBatches * opts.perWrite,
          });
      });
      pump();
    });
  } finally {
    client.close();
    exit = await child.stop();
  }
  if (exit !== 0) throw new Error(`raw stream receiver exited with ${exit}; stderr:\n${child.stderr()}`);
  return result;
}
