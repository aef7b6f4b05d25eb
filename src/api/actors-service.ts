import * as grpc from '@grpc/grpc-js';
import type { ActorsHandlers } from '../generated/cei/v1/Actors.js';
import type { ActorInfo } from '../generated/cei/v1/ActorInfo.js';
import type { TellRequest__Output } from '../generated/cei/v1/TellRequest.js';
import type { TellReply } from '../generated/cei/v1/TellReply.js';
import type { ActorDescription } from '../runtime/runtime.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { TellAck } from '../runtime/envelope.js';
import { validateRef } from '../runtime/ref.js';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import { decodePayload, encodePayload } from './payload.js';
import { toServiceError } from './status.js';

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

/**
 * The public Actors service: validates each request at the boundary (nothing reaches the runtime
 * unless it is well formed) and maps every error to a status in src/api/status.ts.
 */
export function actorsService(system: ActorService, options: ActorsServiceOptions, log: Logger): ActorsHandlers {
  const limit = options.maxPayloadBytes;

  const startTell = (req: TellRequest__Output): Promise<TellAck> => {
    try {
      const ref = validateRef(req.to, 'to');
      const payload = decodePayload(req.payload, limit, 'payload', true);
      return system.tell(ref, payload, req.message_id ? { messageId: req.message_id } : {});
    } catch (err) {
      return Promise.reject(err);
    }
  };
  const reply = (ack: TellAck): TellReply => ({ message_id: ack.messageId, seq: ack.seq });
  const fail = (err: unknown, method: string): Partial<grpc.ServiceError> => {
    const e = toServiceError(err);
    if (e.code === grpc.status.INTERNAL) log.error({ method, err: e.details }, 'internal error');
    return e;
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
        (ack) => callback(null, reply(ack)),
        (err) => callback(fail(err, 'Tell')),
      );
    },

    TellStream(call) {
      // Replies go out in request order; the first failure ends the stream with its status after the
      // replies of every earlier request, so the client knows exactly which tells were acknowledged.
      const slots: Array<{ reply?: TellReply; error?: unknown }> = [];
      let head = 0;
      let failed = false;
      let ended = false;
      const flush = (): void => {
        while (!failed && head < slots.length) {
          const slot = slots[head]!;
          if (slot.error !== undefined) {
            failed = true;
            call.emit('error', fail(slot.error, 'TellStream'));
            return;
          }
          if (!slot.reply) break;
          call.write(slot.reply);
          slots[head++] = undefined as never;
        }
        if (head > 4096 && head * 2 > slots.length) {
          slots.splice(0, head);
          head = 0;
        }
        const inFlight = slots.length - head;
        if (inFlight < options.streamHighWater / 4 && call.isPaused()) call.resume();
        if (ended && inFlight === 0 && !failed) call.end();
      };
      call.on('data', (req: TellRequest__Output) => {
        if (failed) return;
        const slot: { reply?: TellReply; error?: unknown } = {};
        slots.push(slot);
        if (slots.length - head >= options.streamHighWater) call.pause();
        startTell(req).then(
          (ack) => {
            slot.reply = reply(ack);
            flush();
          },
          (err: unknown) => {
            slot.error = err ?? new Error('tell failed');
            flush();
          },
        );
      });
      call.on('end', () => {
        ended = true;
        flush();
      });
      call.on('error', () => {
        failed = true;
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
