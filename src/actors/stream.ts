/**
 * Streams, the data distribution network: one `stream/<name>` actor per named stream. Publishing
 * appends to a durable, replicated log; a subscription is a durable queue with its own cursor, read
 * (pull) or pushed to a subscribing actor, and acknowledged after handling. The protocol and the
 * transform loop built on it are in docs/processes.md.
 *
 * The log lives in actor records, not in the state: a publish writes what it adds and a retention
 * eviction what it drops, where a state snapshot per turn would rewrite the whole log. A record is a
 * segment of SEGMENT consecutive offsets (`s<offset / SEGMENT>`), so a publish of a hundred messages
 * writes and replicates two or three records, not a hundred; a segment goes once retention dropped
 * all of it. Streams written before segments keep a record per message (`m<offset>`), read and
 * dropped as before. The state holds offsets, retention, subscriptions and producers' high-water
 * marks, and fails over with the records.
 *
 * A subscription's checkpoint is stored with its cursor in the same turn: a transform acks a batch
 * together with the state it reached, so a restart anywhere resumes from exactly that input.
 */
import { z } from 'zod';
import { defineActor, type ActorContext } from '../runtime/actor-type.js';
import { parseRefKey, type ActorRef } from '../runtime/ref.js';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import { ResourceName, RefKey, messageValidator, parseMessage } from './message-schema.js';
import { roleTurn } from './role-reply.js';

export const STREAM_TYPE = 'stream';

export const streamRef = (name: string): ActorRef => ({ type: STREAM_TYPE, id: name });

/** Retention when a stream is created without one. */
export const DEFAULT_RETENTION = { maxCount: 100_000 } as const;
/** Messages a read returns at most, and when not told. */
export const MAX_READ = 10_000;
const DEFAULT_READ = 500;
const DEFAULT_IN_FLIGHT = 100;
/** Messages one publish may carry. */
export const MAX_PUBLISH = 10_000;
/** How often a stream with an age limit looks for expired messages while nothing is published. */
const AGE_SWEEP_MS = 5_000;

// --- protocol --------------------------------------------------------------------------------------

const whole = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number()
    .int({ error: `must be a whole number >= ${min}` })
    .min(min, { error: `must be a whole number >= ${min}` })
    .max(max, { error: `must be at most ${max}` });

const Json = z.unknown().refine((v) => v !== undefined, { error: 'must be a JSON value' });
const SubscriptionName = ResourceName;

const Retention = z.strictObject({
  maxCount: whole(1).optional(),
  maxAgeMs: whole(1).optional(),
});

export const StreamMessageSchema = z.union([
  z.strictObject({
    publish: z.strictObject({
      messages: z.array(z.strictObject({ data: Json, time: z.number().finite().optional() })).min(1).max(MAX_PUBLISH),
      producer: ResourceName.optional(),
      seq: whole(0).optional(),
    }),
  }),
  z.strictObject({
    subscribe: z.strictObject({
      subscription: SubscriptionName,
      from: z.union([z.enum(['earliest', 'latest']), whole(0)]).default('latest'),
      deliverTo: RefKey.optional(),
      maxInFlight: whole(1, MAX_READ).default(DEFAULT_IN_FLIGHT),
    }),
  }),
  z.strictObject({ read: z.strictObject({ subscription: SubscriptionName, max: whole(1, MAX_READ).default(DEFAULT_READ), from: whole(0).optional() }) }),
  z.strictObject({ ack: z.strictObject({ subscription: SubscriptionName, offset: whole(0), checkpoint: Json.optional() }) }),
  z.strictObject({ unsubscribe: z.strictObject({ subscription: SubscriptionName }) }),
  z.strictObject({ producer: z.strictObject({ name: ResourceName }) }),
  z.strictObject({ configure: z.strictObject({ retention: Retention }) }),
  z.strictObject({ describe: z.literal(true) }),
  /** The age sweep's timer. */
  z.strictObject({ sweep: z.literal(true) }),
]);
export type StreamMessage = z.output<typeof StreamMessageSchema>;

// --- state -----------------------------------------------------------------------------------------

interface Subscription {
  cursor: number;
  /** Push delivery: the next offset not yet sent to `deliverTo`. */
  sent: number;
  deliverTo?: string;
  maxInFlight: number;
  checkpoint?: unknown;
  /** Messages that left the log by retention before this subscription acked them. */
  skipped: number;
}

export interface StreamState {
  /** The next offset to give. */
  head: number;
  /** The oldest offset still in the log. */
  first: number;
  retention: { maxCount?: number; maxAgeMs?: number };
  subscriptions: Record<string, Subscription>;
  /** Per producer, the highest `seq` published (see docs/processes.md: a transform's exactly-once loop). */
  producers: Record<string, number>;
  sweeping?: boolean;
}

/** One stored message as records hold it. */
interface StoredMessage {
  t: number;
  d: unknown;
}

export interface StreamEntry {
  offset: number;
  time: number;
  data: unknown;
}

export interface SubscriptionView {
  name: string;
  cursor: number;
  queueLength: number;
  deliverTo?: string;
  hasCheckpoint: boolean;
  skipped: number;
}

export interface StreamDescription {
  name: string;
  head: number;
  first: number;
  retention: StreamState['retention'];
  subscriptions: SubscriptionView[];
  producers: Record<string, number>;
}

/** Offsets per segment record. */
export const SEGMENT = 64;
/** A segment's messages, at index offset % SEGMENT (null: evicted, or in a per-message record of an older store). */
type Segment = Array<StoredMessage | null>;
const segmentName = (k: number): string => `s${k.toString(16).padStart(10, '0')}`;
/** A message's own record, as stores from before segments hold them. */
const recordName = (offset: number): string => `m${offset.toString(16).padStart(12, '0')}`;

const segmentOf = (ctx: ActorContext, k: number): Segment | undefined => ctx.record(segmentName(k)) as Segment | undefined;

/** The message at `offset`, from its segment (`segment`, when the caller has it) or its own older record. */
function messageAt(ctx: ActorContext, offset: number, segment = segmentOf(ctx, Math.floor(offset / SEGMENT))): StoredMessage | undefined {
  return segment?.[offset % SEGMENT] ?? (ctx.record(recordName(offset)) as StoredMessage | undefined);
}

function emptyState(): StreamState {
  return { head: 0, first: 0, retention: { ...DEFAULT_RETENTION }, subscriptions: {}, producers: {} };
}

function entriesFrom(ctx: ActorContext, from: number, to: number): StreamEntry[] {
  const out: StreamEntry[] = [];
  let segment: Segment | undefined;
  let k = -1;
  for (let offset = from; offset < to; offset++) {
    if (Math.floor(offset / SEGMENT) !== k) {
      k = Math.floor(offset / SEGMENT);
      segment = segmentOf(ctx, k);
    }
    const m = messageAt(ctx, offset, segment);
    if (m) out.push({ offset, time: m.t, data: m.d });
  }
  return out;
}

/** Appends `messages` at the head, one write per segment they fall in. */
function append(state: StreamState, ctx: ActorContext, messages: ReadonlyArray<{ data: unknown; time?: number | undefined }>): void {
  let segment: Segment | undefined;
  let k = -1;
  for (const msg of messages) {
    if (Math.floor(state.head / SEGMENT) !== k) {
      if (segment) ctx.putRecord(segmentName(k), segment);
      k = Math.floor(state.head / SEGMENT);
      // A copy: the stored segment stays as it was should the turn be refused.
      segment = [...(segmentOf(ctx, k) ?? [])];
    }
    while (segment!.length < state.head % SEGMENT) segment!.push(null);
    segment![state.head % SEGMENT] = { t: msg.time ?? ctx.now, d: msg.data };
    state.head++;
  }
  if (segment) ctx.putRecord(segmentName(k), segment);
}

/** Drops what retention no longer keeps, and moves cursors that fell behind it. */
function evict(state: StreamState, ctx: ActorContext): void {
  const { maxCount, maxAgeMs } = state.retention;
  const oldestKept = maxAgeMs === undefined ? undefined : ctx.now - maxAgeMs;
  while (state.first < state.head) {
    const tooMany = maxCount !== undefined && state.head - state.first > maxCount;
    const tooOld = oldestKept !== undefined && (messageAt(ctx, state.first)?.t ?? -Infinity) < oldestKept;
    if (!tooMany && !tooOld) break;
    if (ctx.record(recordName(state.first)) !== undefined) ctx.deleteRecord(recordName(state.first));
    state.first++;
    // The whole segment before `first` is dropped: its record goes.
    if (state.first % SEGMENT === 0 && segmentOf(ctx, state.first / SEGMENT - 1) !== undefined) ctx.deleteRecord(segmentName(state.first / SEGMENT - 1));
  }
  for (const sub of Object.values(state.subscriptions)) {
    if (sub.cursor < state.first) {
      sub.skipped += state.first - sub.cursor;
      sub.cursor = state.first;
    }
    if (sub.sent < sub.cursor) sub.sent = sub.cursor;
  }
}

/** Pushes what each push subscription may have in flight and has not been sent. */
function push(name: string, state: StreamState, ctx: ActorContext): void {
  for (const [subscription, sub] of Object.entries(state.subscriptions)) {
    if (!sub.deliverTo) continue;
    const end = Math.min(state.head, sub.cursor + sub.maxInFlight);
    if (sub.sent >= end) continue;
    const messages = entriesFrom(ctx, sub.sent, end);
    sub.sent = end;
    if (messages.length > 0) ctx.tell(parseRefKey(sub.deliverTo), { stream: { name, subscription, messages } });
  }
}

function armSweep(state: StreamState, ctx: ActorContext): void {
  if (state.retention.maxAgeMs !== undefined && state.head > state.first && !state.sweeping) {
    state.sweeping = true;
    ctx.after('sweep', AGE_SWEEP_MS, { sweep: true });
  }
}

function describe(name: string, state: StreamState): StreamDescription {
  return {
    name,
    head: state.head,
    first: state.first,
    retention: state.retention,
    subscriptions: Object.entries(state.subscriptions).map(([sub, s]) => ({
      name: sub,
      cursor: s.cursor,
      queueLength: state.head - s.cursor,
      ...(s.deliverTo ? { deliverTo: s.deliverTo } : {}),
      hasCheckpoint: s.checkpoint !== undefined,
      skipped: s.skipped,
    })),
    producers: state.producers,
  };
}

function subscriptionOf(state: StreamState, name: string, stream: string): Subscription {
  const sub = state.subscriptions[name];
  if (!sub) throw new NotFoundError(`stream ${stream} has no subscription ${name}`);
  return sub;
}

/** One turn: the new state (a copy; the old one stays as it was for a refusal) and the reply. */
function apply(name: string, before: StreamState, m: StreamMessage, ctx: ActorContext): { state: StreamState; reply: unknown } {
  // Reads first, on the state as it is: the pump and Subscribe poll `read` all the time.
  if ('read' in m) {
    const sub = subscriptionOf(before, m.read.subscription, name);
    // `from` skips what a reader already has in flight; never before the cursor.
    const start = Math.max(sub.cursor, m.read.from ?? 0);
    const messages = entriesFrom(ctx, start, Math.min(before.head, start + m.read.max));
    return { state: before, reply: { messages, cursor: sub.cursor, head: before.head } };
  }
  if ('producer' in m) return { state: before, reply: { seq: before.producers[m.producer.name] ?? -1 } };
  if ('describe' in m) return { state: before, reply: describe(name, before) };
  const state: StreamState = structuredClone(before);
  if ('publish' in m) {
    const { messages, producer, seq } = m.publish;
    if ((producer === undefined) !== (seq === undefined)) throw new FailedPreconditionError('publish: producer and seq go together');
    if (producer !== undefined && seq! <= (state.producers[producer] ?? -1)) {
      return { state: before, reply: { first: -1, last: -1, duplicate: true } };
    }
    const first = state.head;
    append(state, ctx, messages);
    if (producer !== undefined) state.producers[producer] = seq!;
    evict(state, ctx);
    push(name, state, ctx);
    armSweep(state, ctx);
    return { state, reply: { first, last: state.head - 1, duplicate: false } };
  }
  if ('subscribe' in m) {
    const { subscription, from, deliverTo, maxInFlight } = m.subscribe;
    const existing = state.subscriptions[subscription];
    if (existing) return { state: before, reply: { cursor: existing.cursor, checkpoint: existing.checkpoint ?? null } };
    const cursor = from === 'earliest' ? state.first : from === 'latest' ? state.head : Math.min(Math.max(from, state.first), state.head);
    state.subscriptions[subscription] = { cursor, sent: cursor, maxInFlight, skipped: 0, ...(deliverTo ? { deliverTo } : {}) };
    push(name, state, ctx);
    return { state, reply: { cursor, checkpoint: null } };
  }
  if ('ack' in m) {
    const sub = subscriptionOf(state, m.ack.subscription, name);
    if (m.ack.offset >= state.head) throw new FailedPreconditionError(`ack of offset ${m.ack.offset}: stream ${name} ends at ${state.head - 1}`);
    // An ack older than the cursor is a retry of one already applied: nothing moves back.
    if (m.ack.offset + 1 <= sub.cursor) return { state: before, reply: { cursor: sub.cursor } };
    sub.cursor = m.ack.offset + 1;
    if (sub.sent < sub.cursor) sub.sent = sub.cursor;
    if (m.ack.checkpoint !== undefined) sub.checkpoint = m.ack.checkpoint;
    push(name, state, ctx);
    return { state, reply: { cursor: sub.cursor } };
  }
  if ('unsubscribe' in m) {
    subscriptionOf(state, m.unsubscribe.subscription, name);
    delete state.subscriptions[m.unsubscribe.subscription];
    return { state, reply: {} };
  }
  if ('configure' in m) {
    state.retention = { ...m.configure.retention };
    if (state.retention.maxCount === undefined && state.retention.maxAgeMs === undefined) state.retention = { ...DEFAULT_RETENTION };
    evict(state, ctx);
    armSweep(state, ctx);
    return { state, reply: describe(name, state) };
  }
  // The age sweep's timer: every other message returned above.
  state.sweeping = false;
  evict(state, ctx);
  armSweep(state, ctx);
  return { state, reply: {} };
}

export const stream = defineActor<StreamState>({
  name: STREAM_TYPE,
  durability: 'sync',
  placement: 'any',
  initialState: () => emptyState(),
  validate: messageValidator(StreamMessageSchema),
  validateInit: (init) => (init === undefined || init === null ? undefined : 'a stream takes no init; configure its retention with {"configure": ...}'),
  handle(state, message, ctx) {
    const m = parseMessage(StreamMessageSchema, message);
    return roleTurn(state, ctx, () => apply(ctx.self.id, state, m, ctx));
  },
});
