/**
 * The Streams service's Subscribe over the real stream actor on a real store, through an
 * ActorService that records the stream reads it makes, and a stand-in for the gRPC server stream.
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { askRole } from '../../../src/actors/role-reply.js';
import { stream } from '../../../src/actors/stream.js';
import { streamsService } from '../../../src/api/streams-service.js';
import type { StreamMessage } from '../../../src/generated/cei/v1/StreamMessage.js';
import type { StreamSubscribeRequest__Output } from '../../../src/generated/cei/v1/StreamSubscribeRequest.js';
import type { ActorService } from '../../../src/runtime/actor-service.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { ActorRef } from '../../../src/runtime/ref.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();
const S: ActorRef = { type: 'stream', id: 's' };

interface Read {
  from: number | undefined;
  event: 'start' | 'end';
}

function recordingService(node: TestNode): { service: ActorService; reads: Read[] } {
  const reads: Read[] = [];
  const service = {
    async ask<T>(ref: ActorRef, payload: unknown, timeoutMs?: number): Promise<T> {
      const from = (payload as { read?: { from?: number } }).read?.from;
      const isRead = (payload as { read?: unknown }).read !== undefined;
      if (isRead) reads.push({ from, event: 'start' });
      const reply = await node.system.ask<T>(ref, payload, timeoutMs);
      if (isRead) reads.push({ from, event: 'end' });
      return reply;
    },
  } as unknown as ActorService;
  return { service, reads };
}

/** A Subscribe call as the handler sees it: written StreamMessages are kept; `cancel()` ends it. */
class FakeCall extends EventEmitter {
  cancelled = false;
  readonly written: StreamMessage[] = [];
  constructor(readonly request: StreamSubscribeRequest__Output) {
    super();
  }
  write(m: StreamMessage): boolean {
    this.written.push(m);
    return true;
  }
  cancel(): void {
    this.cancelled = true;
  }
}

describe('Streams service Subscribe', () => {
  it('delivers every message once, in order, with several reads in flight while the reads come back full', async () => {
    const node = await nodes.node([stream]);
    const count = 50;
    await askRole(node.system, S, { publish: { messages: Array.from({ length: count }, (_, i) => ({ data: i })) } });
    const { service, reads } = recordingService(node);
    const handlers = streamsService(service, { maxPayloadBytes: 1 << 20 }, silentLogger);
    const call = new FakeCall({ stream: 's', subscription: 'sub', from: 'earliest', batch: 10, batched: false });
    handlers.Subscribe(call as unknown as grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>);
    await waitFor(() => call.written.length >= count, { what: `${count} messages written`, timeoutMs: 20_000 });
    call.cancel();
    expect(call.written.map((m) => [Number(m.offset), JSON.parse(m.data_json!)])).toEqual(Array.from({ length: count }, (_, i) => [i, i]));
    const index = (from: number, event: Read['event']): number => reads.findIndex((r) => r.from === from && r.event === event);
    // The backlog is read three batches at a time, not one round trip after another.
    expect(index(20, 'start')).toBeGreaterThanOrEqual(0);
    expect(index(20, 'start')).toBeLessThan(index(10, 'end'));
    expect(index(30, 'start')).toBeLessThan(index(10, 'end'));
  });

  it('puts many messages in one StreamMessage for a client that asks for it, and one in each for one that does not', async () => {
    const node = await nodes.node([stream]);
    const count = 30;
    await askRole(node.system, S, { publish: { messages: Array.from({ length: count }, (_, i) => ({ data: { k: i } })) } });
    const handlers = streamsService(node.system, { maxPayloadBytes: 1 << 20 }, silentLogger);
    const flat = (written: StreamMessage[]): unknown[] => written.flatMap((m) => [m, ...(m.more ?? [])]).map((m) => [Number(m.offset), JSON.parse(m.data_json!)]);
    const expected = Array.from({ length: count }, (_, i) => [i, { k: i }]);

    const batched = new FakeCall({ stream: 's', subscription: 'batched', from: 'earliest', batch: 10, batched: true });
    handlers.Subscribe(batched as unknown as grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>);
    await waitFor(() => flat(batched.written).length >= count, { what: `${count} messages written batched`, timeoutMs: 20_000 });
    batched.cancel();
    expect(flat(batched.written)).toEqual(expected);
    expect(batched.written.length).toBe(3);

    const single = new FakeCall({ stream: 's', subscription: 'single', from: 'earliest', batch: 10, batched: false });
    handlers.Subscribe(single as unknown as grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>);
    await waitFor(() => single.written.length >= count, { what: `${count} messages written one each`, timeoutMs: 20_000 });
    single.cancel();
    expect(flat(single.written)).toEqual(expected);
    expect(single.written.every((m) => m.more === undefined)).toBe(true);
  });

  it('drops reads past a batch that came back short, and delivers what is published later once', async () => {
    const node = await nodes.node([stream]);
    await askRole(node.system, S, { publish: { messages: Array.from({ length: 25 }, (_, i) => ({ data: i })) } });
    const { service } = recordingService(node);
    const handlers = streamsService(service, { maxPayloadBytes: 1 << 20 }, silentLogger);
    const call = new FakeCall({ stream: 's', subscription: 'sub', from: 'earliest', batch: 10, batched: false });
    handlers.Subscribe(call as unknown as grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>);
    await waitFor(() => call.written.length >= 25, { what: '25 messages written', timeoutMs: 20_000 });
    await askRole(node.system, S, { publish: { messages: Array.from({ length: 17 }, (_, i) => ({ data: 25 + i })) } });
    await waitFor(() => call.written.length >= 42, { what: '42 messages written', timeoutMs: 20_000 });
    // Room for a stray late delivery to show.
    await new Promise((resolve) => setTimeout(resolve, 100));
    call.cancel();
    expect(call.written.map((m) => JSON.parse(m.data_json!))).toEqual(Array.from({ length: 42 }, (_, i) => i));
  });
});
