import * as grpc from '@grpc/grpc-js';
import type { ActorsHandlers } from '../generated/cei/v1/Actors.js';
import type { ActorInfo } from '../generated/cei/v1/ActorInfo.js';
import type { TellRequest__Output } from '../generated/cei/v1/TellRequest.js';
import type { TellReply } from '../generated/cei/v1/TellReply.js';
import type { TellBatch__Output } from '../generated/cei/v1/TellBatch.js';
import type { ActorDescription } from '../runtime/runtime.js';
import type { ActorService, TellOptions } from '../runtime/actor-service.js';
import type { TellAck } from '../runtime/envelope.js';
import { validateRef, type ActorRef } from '../runtime/ref.js';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import { decodePayload, decodeRequiredPayload, encodePayload } from './payload.js';
import { toServiceError } from './status.js';
import { writeAll, writeInBursts } from './write-together.js';

/** Most tells one TellBatches message may carry (the proto's documented limit). */
export const MAX_TELL_BATCH = 1_000;

export interface ActorsServiceOptions {
  /** Largest accepted payload (JSON bytes). */
  maxPayloadBytes: number;
  /** TellStream pauses reading past this many unacknowledged tells, so a fast client cannot exhaust memory. */
  streamHighWater: number;
}

function info(d: ActorDescription): ActorInfo {
  return {
    ref: d.ref,
    node: d.node,
    status: d.status,
    mailbox_depth: d.mailboxDepth,
    restarts: d.restarts,
    replicas: d.replicas,
    epoch: d.epoch,
    dead_letters: d.deadLetters,
  };
}

/** Milliseconds left before the call's own deadline (Infinity when it has none). */
function remainingMs(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(1, at - Date.now()) : Infinity;
}

/** Tells a bulk-tell stream starts in one macrotask before it lets the node's other work run. */
export const SLICE_TELLS = 256;

/**
 * The public Actors service: validates each request at the boundary (nothing reaches the runtime
 * unless it is well formed) and maps every error to a status in src/api/status.ts.
 */
export function actorsService(system: ActorService, options: ActorsServiceOptions, log: Logger): ActorsHandlers {
  const limit = options.maxPayloadBytes;

  /** A tell's fields checked at the boundary; `at` prefixes the names in errors (a batch's index). */
  const checkTell = (req: TellRequest__Output, at = ''): { ref: ActorRef; payload: unknown; text: string; messageId: string } => {
    const ref = validateRef(req.to, `${at}to`);
    const { value, text } = decodeRequiredPayload(req.payload, limit, `${at}payload`);
    return { ref, payload: value, text, messageId: req.message_id };
  };
  /** The tell as the runtime takes it: with the payload's text, which the owner stores as it is. */
  const tellOptions = (t: { text: string; messageId: string }): TellOptions => (t.messageId ? { messageId: t.messageId, payloadJson: t.text } : { payloadJson: t.text });
  const startTell = (req: TellRequest__Output): Promise<TellAck> => {
    try {
      const checked = checkTell(req);
      return system.tell(checked.ref, checked.payload, tellOptions(checked));
    } catch (err) {
      return Promise.reject(err);
    }
  };
  const fail = (err: unknown, method: string): Partial<grpc.ServiceError> => {
    const e = toServiceError(err);
    if (e.code === grpc.status.INTERNAL) log.error({ method, err: e.details }, 'internal error');
    return e;
  };

  /**
   * The replies of a bulk-tell stream, in request order: `write` gets each run of leading replies
   * that became ready. The first failure ends the stream with its status after the replies of every
   * earlier tell, so the client knows exactly which tells were acknowledged. Reading pauses past
   * `streamHighWater` unanswered tells.
   */
  const orderedReplies = (method: string, call: grpc.ServerDuplexStream<unknown, unknown>, write: (ready: TellReply[]) => void) => {
    type Slot = { reply?: TellReply; error?: unknown };
    const slots: Slot[] = [];
    let head = 0;
    let failed = false;
    /** Input was refused: nothing read after it is started. */
    let refusing = false;
    let ended = false;
    const flush = (): void => {
      const ready: TellReply[] = [];
      while (!failed && head < slots.length) {
        const slot = slots[head]!;
        if (slot.error !== undefined) {
          failed = true;
          break;
        }
        if (!slot.reply) break;
        ready.push(slot.reply);
        slots[head++] = undefined as never;
      }
      if (ready.length > 0) write(ready);
      if (failed) {
        call.emit('error', fail(slots[head]!.error, method));
        return;
      }
      if (head > 4096 && head * 2 > slots.length) {
        slots.splice(0, head);
        head = 0;
      }
      const inFlight = slots.length - head;
      if (!yielding && inFlight < options.streamHighWater / 4 && call.isPaused()) call.resume();
      if (ended && inFlight === 0) call.end();
    };
    // Acks of one group commit settle one by one over many microtasks: flushing once they all did
    // (after this macrotask) sends them as one reply message instead of one message each.
    let flushScheduled = false;
    const scheduleFlush = (): void => {
      if (flushScheduled) return;
      flushScheduled = true;
      setImmediate(() => {
        flushScheduled = false;
        flush();
      });
    };
    const settle = (slot: Slot, tell: Promise<TellAck>): void => {
      tell.then(
        (ack) => {
          slot.reply = { message_id: ack.messageId, seq: ack.seq };
          scheduleFlush();
        },
        (err: unknown) => {
          slot.error = err ?? new Error('tell failed');
          scheduleFlush();
        },
      );
    };
    call.on('end', () => {
      ended = true;
      flush();
    });
    call.on('error', () => {
      failed = true;
    });
    // grpc-js hands over every message of what it read in one go, and each tell starts in a chain of
    // microtasks: a client with thousands of tells in flight kept a node from its timers and its
    // peer links for up to 1.5 s (measured), long enough for its peers to suspect it. Past
    // SLICE_TELLS tells in one macrotask the stream pauses until the next one.
    let startedInSlice = 0;
    let yielding = false;
    const yieldSlice = (): void => {
      yielding = true;
      call.pause();
      setImmediate(() => {
        yielding = false;
        startedInSlice = 0;
        if (!failed && slots.length - head < options.streamHighWater) call.resume();
      });
    };
    const track = (tell: Promise<TellAck>): void => {
      const slot: Slot = {};
      slots.push(slot);
      settle(slot, tell);
    };
    const afterStarting = (n: number): void => {
      startedInSlice += n;
      if (slots.length - head >= options.streamHighWater) call.pause();
      else if (startedInSlice >= SLICE_TELLS && !yielding) yieldSlice();
    };
    return {
      /** Starts the tells `tell` gives, unless the stream failed or refused input already. */
      start(tells: () => Array<Promise<TellAck>>): void {
        if (failed || refusing) return;
        const started = tells();
        for (const tell of started) track(tell);
        afterStarting(started.length);
      },
      /** start for one tell, `tell(input)`, without a closure and an array per message. */
      startOne<T>(input: T, tell: (input: T) => Promise<TellAck>): void {
        if (failed || refusing) return;
        track(tell(input));
        afterStarting(1);
      },
      /** Input that started nothing: the stream ends with `err` once the replies before it are out, and nothing read after it starts. */
      refused(err: unknown): void {
        if (failed || refusing) return;
        refusing = true;
        slots.push({ error: err });
        flush();
      },
    };
  };

  return {
    Spawn(call, callback) {
      (async () => {
        const ref = validateRef(call.request.ref, 'ref');
        const init = decodePayload(call.request.init, limit, 'init', false);
        const { created, node } = await system.spawn(ref, init);
        return { ref, node, created };
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'Spawn')),
      );
    },

    Tell(call, callback) {
      startTell(call.request).then(
        (ack) => callback(null, { message_id: ack.messageId, seq: ack.seq }),
        (err) => callback(fail(err, 'Tell')),
      );
    },

    TellStream(call) {
      writeInBursts(call);
      const replies = orderedReplies('TellStream', call, (ready) => writeAll(call, ready));
      call.on('data', (req: TellRequest__Output) => replies.startOne(req, startTell));
    },

    TellBatches(call) {
      writeInBursts(call);
      const replies = orderedReplies('TellBatches', call, (ready) => call.write({ replies: ready }));
      call.on('data', (batch: TellBatch__Output) => {
        if (batch.tells.length > MAX_TELL_BATCH) {
          replies.refused(new InvalidArgumentError(`a batch holds at most ${MAX_TELL_BATCH} tells, this one ${batch.tells.length}`));
          return;
        }
        // Validate every tell before starting any: a bad batch changes nothing.
        let checked: Array<ReturnType<typeof checkTell>>;
        try {
          checked = batch.tells.map((req, i) => checkTell(req, `tells[${i}].`));
        } catch (err) {
          replies.refused(err);
          return;
        }
        replies.start(() => checked.map((t) => system.tell(t.ref, t.payload, tellOptions(t))));
      });
    },

    Ask(call, callback) {
      (async () => {
        const ref = validateRef(call.request.to, 'to');
        const payload = decodePayload(call.request.payload, limit, 'payload', true);
        const fromCall = remainingMs(call);
        const asked = call.request.timeout_ms > 0 ? call.request.timeout_ms : Infinity;
        const ms = Math.min(fromCall, asked);
        const answer = await system.ask(ref, payload, Number.isFinite(ms) ? ms : undefined);
        return { payload: encodePayload(answer) };
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'Ask')),
      );
    },

    Stop(call, callback) {
      (async () => {
        await system.stop(validateRef(call.request.ref, 'ref'));
        return {};
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'Stop')),
      );
    },

    Describe(call, callback) {
      (async () => info(await system.describe(validateRef(call.request.ref, 'ref'))))().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'Describe')),
      );
    },

    List(call, callback) {
      (async () => {
        const { type, page_size, page_token } = call.request;
        const page = await system.list({ type: type || undefined, pageSize: page_size, pageToken: page_token || undefined });
        return { actors: page.actors.map(info), next_page_token: page.nextPageToken };
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'List')),
      );
    },

    DeadLetters(call, callback) {
      (async () => {
        const letters = await system.deadLetters(validateRef(call.request.ref, 'ref'));
        return {
          letters: letters.map((l) => ({
            seq: l.seq,
            payload: encodePayload(l.payload),
            message_id: l.messageId,
            error: l.error,
            attempts: l.attempts,
            at_ms: l.at,
          })),
        };
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'DeadLetters')),
      );
    },

    Redrive(call, callback) {
      (async () => {
        const ref = validateRef(call.request.ref, 'ref');
        const seqs = call.request.seqs.map((s) => {
          const n = Number(s);
          if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`seq ${s} is not a valid sequence number`);
          return n;
        });
        return { redriven: await system.redrive(ref, seqs) };
      })().then(
        (r) => callback(null, r),
        (err) => callback(fail(err, 'Redrive')),
      );
    },
  };
}
