/**
 * A typed client of a node's public Streams service: messages go out and come back as JSON values;
 * errors are grpc ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { StreamsClient as StreamsGrpcClient } from './generated/cei/v1/Streams.js';
import type { StreamInfo__Output } from './generated/cei/v1/StreamInfo.js';
import type { StreamMessage__Output } from './generated/cei/v1/StreamMessage.js';
import type { StreamDescription, StreamEntry } from './actors/stream.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';

export function streamIn(s: StreamInfo__Output): StreamDescription {
  const retention: StreamDescription['retention'] = {};
  if (Number(s.max_count) > 0) retention.maxCount = Number(s.max_count);
  if (Number(s.max_age_ms) > 0) retention.maxAgeMs = Number(s.max_age_ms);
  return {
    name: s.name,
    head: Number(s.head),
    first: Number(s.first),
    retention,
    subscriptions: s.subscriptions.map((x) => ({
      name: x.name,
      cursor: Number(x.cursor),
      queueLength: Number(x.queue_length),
      ...(x.deliver_to ? { deliverTo: x.deliver_to } : {}),
      hasCheckpoint: x.has_checkpoint,
      skipped: Number(x.skipped),
    })),
    producers: Object.fromEntries(Object.entries(s.producers).map(([k, v]) => [k, Number(v)])),
  };
}

export interface PublishOptions {
  times?: number[];
  producer?: string;
  seq?: number;
  messageId?: string;
}

/** A live subscription: its messages as they come, and the call to end it. */
export interface Subscription {
  /** Yields messages in offset order until the subscription is closed or fails. */
  messages: AsyncIterable<StreamEntry>;
  close(): void;
}

export class StreamsClient {
  readonly raw: StreamsGrpcClient;

  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.Streams(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  publish(stream: string, messages: unknown[], opts: PublishOptions = {}, deadlineMs?: number): Promise<{ first: number; last: number; duplicate: boolean }> {
    const req = {
      stream,
      messages_json: messages.map((m) => JSON.stringify(m)),
      times_ms: opts.times ?? [],
      producer: opts.producer ?? '',
      seq: opts.seq ?? 0,
      message_id: opts.messageId ?? '',
    };
    return unary<{ first: string; last: string; duplicate: boolean }>((o, cb) => this.raw.Publish(req, o, cb), deadlineMs).then((r) => ({
      first: Number(r.first),
      last: Number(r.last),
      duplicate: r.duplicate,
    }));
  }

  subscribe(stream: string, subscription: string, opts: { from?: 'earliest' | 'latest' | number; batch?: number } = {}): Subscription {
    // batched: several messages per StreamMessage (a server that predates it sends one each, more empty).
    const call = this.raw.Subscribe({ stream, subscription, from: opts.from === undefined ? '' : String(opts.from), batch: opts.batch ?? 0, batched: true });
    const entry = (m: StreamMessage__Output): StreamEntry => ({ offset: Number(m.offset), time: m.time_ms, data: JSON.parse(m.data_json) as unknown });
    const messages = (async function* () {
      try {
        for await (const m of call as AsyncIterable<StreamMessage__Output>) {
          yield entry(m);
          for (const next of m.more) yield entry(next);
        }
      } catch (err) {
        // Ending the call ourselves is not an error of the subscription.
        if ((err as grpc.ServiceError).code !== grpc.status.CANCELLED) throw err;
      }
    })();
    return { messages, close: () => call.cancel() };
  }

  ack(stream: string, subscription: string, offset: number, checkpoint?: unknown, deadlineMs?: number): Promise<number> {
    const req = { stream, subscription, offset, checkpoint_json: checkpoint === undefined ? '' : JSON.stringify(checkpoint) };
    return unary<{ cursor: string }>((o, cb) => this.raw.Ack(req, o, cb), deadlineMs).then((r) => Number(r.cursor));
  }

  async unsubscribe(stream: string, subscription: string, deadlineMs?: number): Promise<void> {
    await unary((o, cb) => this.raw.Unsubscribe({ stream, subscription }, o, cb), deadlineMs);
  }

  async describe(stream: string, deadlineMs?: number): Promise<StreamDescription> {
    return streamIn(await unary<StreamInfo__Output>((o, cb) => this.raw.Describe({ stream }, o, cb), deadlineMs));
  }

  async configure(stream: string, retention: { maxCount?: number; maxAgeMs?: number }, deadlineMs?: number): Promise<StreamDescription> {
    const req = { stream, max_count: retention.maxCount ?? 0, max_age_ms: retention.maxAgeMs ?? 0 };
    return streamIn(await unary<StreamInfo__Output>((o, cb) => this.raw.Configure(req, o, cb), deadlineMs));
  }

  async list(deadlineMs?: number): Promise<StreamDescription[]> {
    const r = await unary<{ streams: StreamInfo__Output[] }>((o, cb) => this.raw.List({}, o, cb), deadlineMs);
    return r.streams.map(streamIn);
  }

  close(): void {
    this.raw.close();
  }
}
