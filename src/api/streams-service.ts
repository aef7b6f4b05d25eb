/**
 * The public Streams service. It holds no stream logic: each call becomes a message of the stream's
 * actor (stream/<name>), checked with the actor's own schema so that bad input is refused here, asked
 * through the ActorService (the cluster's router: any node, following fail-overs), and mapped to the
 * proto. Subscribe is a loop of reads from the subscription: the actor never holds a call open. A
 * client that sets `batched` gets many messages per StreamMessage (in `more`): grpc-js's cost per
 * streamed message, on this node and the client, was about as much as the rest of a delivery.
 */
import type * as grpc from '@grpc/grpc-js';
import type { StreamsHandlers } from '../generated/cei/v1/Streams.js';
import type { StreamInfo } from '../generated/cei/v1/StreamInfo.js';
import type { StreamMessage } from '../generated/cei/v1/StreamMessage.js';
import type { StreamSubscribeRequest__Output } from '../generated/cei/v1/StreamSubscribeRequest.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import { askRole } from '../actors/role-reply.js';
import { ResourceName, parseMessage } from '../actors/message-schema.js';
import { MAX_READ, STREAM_TYPE, StreamMessageSchema, streamRef, type StreamDescription, type StreamEntry } from '../actors/stream.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { handlerFactory, jsonField, remainingMs, type UnaryCall } from './unary.js';
import { toServiceError } from './status.js';

export interface StreamsServiceOptions {
  /** Largest accepted JSON field (bytes). */
  maxPayloadBytes: number;
}

/** Data (JSON characters) a batched Subscribe puts in one StreamMessage at most, past its first message. */
const BATCHED_BYTES = 256 * 1024;
/** Reads a Subscribe keeps in flight while it is behind (see subscribe). */
const READS_AHEAD = 3;
/** How long an idle Subscribe waits before reading again, growing from the first to the last. */
const IDLE_WAIT_MS = [5, 10, 20, 50, 100] as const;

function streamName(name: string, field = 'stream'): string {
  const r = ResourceName.safeParse(name);
  if (!r.success) throw new InvalidArgumentError(`${field}: ${r.error.issues[0]?.message ?? 'bad name'}`);
  return name;
}

/** A 64-bit field as proto-loader hands it over (a string with longs: String) as a safe integer. */
function int64(value: string | number | undefined, field: string): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${field}: must be a whole number`);
  return n;
}

function wire(m: StreamEntry): StreamMessage {
  return { offset: m.offset, time_ms: m.time, data_json: JSON.stringify(m.data) };
}

export function streamInfo(d: StreamDescription): StreamInfo {
  return {
    name: d.name,
    head: d.head,
    first: d.first,
    max_count: d.retention.maxCount ?? 0,
    max_age_ms: d.retention.maxAgeMs ?? 0,
    subscriptions: d.subscriptions.map((s) => ({
      name: s.name,
      cursor: s.cursor,
      queue_length: s.queueLength,
      deliver_to: s.deliverTo ?? '',
      has_checkpoint: s.hasCheckpoint,
      skipped: s.skipped,
    })),
    producers: d.producers,
  };
}

export function streamsService(service: ActorService, options: StreamsServiceOptions, log: Logger): StreamsHandlers {
  const handler = handlerFactory(log);
  /** Asks the stream actor `message`, checked against its schema first. */
  const ask = <T>(stream: string, message: unknown, call?: UnaryCall): Promise<T> => {
    parseMessage(StreamMessageSchema, message);
    return askRole<T>(service, streamRef(stream), message, call ? remainingMs(call) : undefined);
  };
  /** A stream that nothing ever created is unknown, rather than woken up empty by a read. */
  const mustExist = async (stream: string): Promise<void> => {
    const d = await service.describe(streamRef(stream));
    if (d.status === 'inactive') throw new NotFoundError(`no stream named ${stream}`);
  };

  return {
    Publish: handler('Publish', async (req, call) => {
      const stream = streamName(req.stream);
      if (req.messages_json.length === 0) throw new InvalidArgumentError('messages_json: at least one message');
      if (req.times_ms.length !== 0 && req.times_ms.length !== req.messages_json.length) {
        throw new InvalidArgumentError(`times_ms: one per message (${req.messages_json.length}) or none, not ${req.times_ms.length}`);
      }
      const messages = req.messages_json.map((json, i) => {
        const data = jsonField(json, `messages_json[${i}]`, options.maxPayloadBytes);
        return req.times_ms.length > 0 ? { data, time: req.times_ms[i]! } : { data };
      });
      const publish: Record<string, unknown> = { messages };
      if (req.producer !== '') {
        publish.producer = req.producer;
        publish.seq = int64(req.seq, 'seq');
      } else if (int64(req.seq, 'seq') !== 0) throw new InvalidArgumentError('seq: only with producer');
      const message = { publish };
      parseMessage(StreamMessageSchema, message);
      if (req.message_id !== '') {
        // A tell with an id, so that a retried call is recognised by the actor's dedup window. A tell
        // is acknowledged once durable, before it is handled: it has no offsets to report.
        const ack = await service.tell(streamRef(stream), message, { messageId: req.message_id });
        return { first: -1, last: -1, duplicate: ack.duplicate };
      }
      // Checked above already: asked straight, not through `ask` (a publish is the hot path).
      return askRole<{ first: number; last: number; duplicate: boolean }>(service, streamRef(stream), message, remainingMs(call));
    }),

    Subscribe: (call: grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>) => {
      void subscribe(call).catch((err: unknown) => {
        // grpc-js ends a server stream with a status when the handler emits 'error' with one.
        if (!call.cancelled) call.emit('error', toServiceError(err));
      });
    },

    Ack: handler('Ack', async (req, call) => {
      const stream = streamName(req.stream);
      const ack: Record<string, unknown> = { subscription: req.subscription, offset: int64(req.offset, 'offset') };
      if (req.checkpoint_json !== '') ack.checkpoint = jsonField(req.checkpoint_json, 'checkpoint_json', options.maxPayloadBytes);
      await mustExist(stream);
      return ask<{ cursor: number }>(stream, { ack }, call);
    }),

    Unsubscribe: handler('Unsubscribe', async (req, call) => {
      const stream = streamName(req.stream);
      await mustExist(stream);
      await ask(stream, { unsubscribe: { subscription: req.subscription } }, call);
      return {};
    }),

    Describe: handler('Describe', async (req, call) => {
      const stream = streamName(req.stream);
      await mustExist(stream);
      return streamInfo(await ask<StreamDescription>(stream, { describe: true }, call));
    }),

    Configure: handler('Configure', async (req, call) => {
      const stream = streamName(req.stream);
      const retention: Record<string, number> = {};
      const maxCount = int64(req.max_count, 'max_count');
      const maxAgeMs = int64(req.max_age_ms, 'max_age_ms');
      if (maxCount > 0) retention.maxCount = maxCount;
      if (maxAgeMs > 0) retention.maxAgeMs = maxAgeMs;
      return streamInfo(await ask<StreamDescription>(stream, { configure: { retention } }, call));
    }),

    List: handler('List', async (_req, call) => {
      const streams: StreamInfo[] = [];
      let pageToken = '';
      do {
        const page = await service.list({ type: STREAM_TYPE, pageSize: 1000, ...(pageToken ? { pageToken } : {}) });
        for (const a of page.actors) streams.push(streamInfo(await askRole<StreamDescription>(service, a.ref, { describe: true }, remainingMs(call))));
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return { streams: streams.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')) };
    }),
  };

  /** Reads from the subscription's cursor on, past what this call already sent, until cancelled. */
  async function subscribe(call: grpc.ServerWritableStream<StreamSubscribeRequest__Output, StreamMessage>): Promise<void> {
    const req = call.request;
    const stream = streamName(req.stream);
    const subscription = streamName(req.subscription, 'subscription');
    const batch = req.batch === 0 ? 500 : req.batch;
    if (batch > MAX_READ) throw new InvalidArgumentError(`batch: at most ${MAX_READ}`);
    let from: 'earliest' | 'latest' | number = 'latest';
    if (req.from === 'earliest' || req.from === 'latest') from = req.from;
    else if (req.from !== '') {
      from = Number(req.from);
      if (!Number.isSafeInteger(from) || from < 0) throw new InvalidArgumentError(`from: "earliest", "latest" or an offset, not ${JSON.stringify(req.from)}`);
    }
    const { cursor } = await ask<{ cursor: number }>(stream, { subscribe: { subscription, from } });
    type Read = { messages: StreamEntry[]; cursor: number };
    const read = (at: number): { at: number; reply: Promise<Read> } => {
      const reply = ask<Read>(stream, { read: { subscription, max: batch, from: at } });
      reply.catch(() => undefined); // awaited below, unless the call ends first or the read is dropped
      return { at, reply };
    };
    let next = cursor;
    let idle = 0;
    // Reads in flight, in offset order, while a batch is written: each read is a round trip through
    // the stream's durable mailbox, and this overlaps them with the writes to the client. The first
    // always starts at `next`. While the reads come back full the subscriber is behind, so the reads
    // after it start where a full batch would end: a backlog is read READS_AHEAD batches at a time
    // instead of one round trip per batch. A read that turns out not to start at `next` is dropped.
    let ahead: Array<{ at: number; reply: Promise<Read> }> = [];
    while (!call.cancelled) {
      const head = ahead.shift() ?? read(next);
      const r = await head.reply;
      if (head.at !== next) {
        ahead = [];
        continue;
      }
      if (r.messages.length === 0) {
        ahead = [];
        // Acks by another reader (or retention) may have moved the cursor past what we sent.
        next = Math.max(next, r.cursor);
        await new Promise((resolve) => setTimeout(resolve, IDLE_WAIT_MS[Math.min(idle++, IDLE_WAIT_MS.length - 1)]));
        continue;
      }
      idle = 0;
      const first = r.messages[0]!.offset;
      next = r.messages.at(-1)!.offset + 1;
      const full = r.messages.length === batch && next - first === batch;
      if (ahead[0]?.at !== next) ahead = [read(next)];
      if (full) while (ahead.length < READS_AHEAD) ahead.push(read(ahead.at(-1)!.at + batch));
      else ahead.length = 1;
      for (let i = 0; i < r.messages.length; ) {
        if (call.cancelled) return;
        const message = wire(r.messages[i++]!);
        if (req.batched) {
          // The messages after it ride in `more`, up to a size well under a client's receive limit.
          const more: StreamMessage[] = [];
          for (let bytes = message.data_json!.length; i < r.messages.length && bytes < BATCHED_BYTES; ) {
            const m = wire(r.messages[i++]!);
            bytes += m.data_json!.length;
            more.push(m);
          }
          message.more = more;
        }
        // Respect the client's flow control: a slow reader must not grow this node's buffers.
        if (!call.write(message)) await new Promise((resolve) => call.once('drain', resolve));
      }
    }
    log.debug({ stream, subscription }, 'subscribe ended');
  }
}
