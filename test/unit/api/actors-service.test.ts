/**
 * The Actors service's bulk-tell streams over a real ActorSystem on a real store, through a stand-in
 * for the gRPC server stream that records how the handler paces its reading.
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { counter } from '../../../src/actors/counter.js';
import { actorsService, SLICE_TELLS } from '../../../src/api/actors-service.js';
import type { TellReply } from '../../../src/generated/cei/v1/TellReply.js';
import type { TellRequest__Output } from '../../../src/generated/cei/v1/TellRequest.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

/** A server duplex stream stand-in: records writes and every pause and resume, in order. */
class StandInCall extends EventEmitter {
  readonly replies: TellReply[] = [];
  readonly pacing: Array<'pause' | 'resume'> = [];
  private paused = false;
  write(reply: TellReply): boolean {
    this.replies.push(reply);
    return true;
  }
  pause(): this {
    this.paused = true;
    this.pacing.push('pause');
    return this;
  }
  resume(): this {
    this.paused = false;
    this.pacing.push('resume');
    return this;
  }
  isPaused(): boolean {
    return this.paused;
  }
  cork(): void {}
  uncork(): void {}
  end(): void {}
}

const tell = (i: number): TellRequest__Output => ({ to: { type: 'counter', id: `c${i % 50}` }, payload: Buffer.from(JSON.stringify({ add: 1 })), message_id: '' }) as TellRequest__Output;

describe('Actors service bulk tells', () => {
  it('lets the node run other work after SLICE_TELLS tells that arrived in one go, then reads on', async () => {
    const node = await nodes.node([counter]);
    const handlers = actorsService(node.system, { maxPayloadBytes: 1024, streamHighWater: 8192 }, silentLogger);
    const call = new StandInCall();
    handlers.TellStream(call as unknown as grpc.ServerDuplexStream<TellRequest__Output, TellReply>);
    const n = SLICE_TELLS * 2 + 10;
    // What grpc-js does with one big read: every message handed over in the same macrotask.
    for (let i = 0; i < n; i++) {
      call.emit('data', tell(i));
      if (i === SLICE_TELLS - 2) expect(call.pacing).toEqual([]);
    }
    // Paused once the slice was full; nothing resumes it before the next macrotask.
    expect(call.pacing).toEqual(['pause']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(call.pacing).toEqual(['pause', 'resume']);
    await waitFor(() => call.replies.length === n, { what: `${n} replies` });
    expect(call.replies.map((r) => Number(r.seq))).toHaveLength(n);
    const total = await Promise.all(Array.from({ length: 50 }, (_, i) => node.system.ask<{ count: number }>({ type: 'counter', id: `c${i}` }, { get: true })));
    expect(total.reduce((a, s) => a + s.count, 0)).toBe(n);
  });
});
