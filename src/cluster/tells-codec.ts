/**
 * The binary form of an actor.tells request and its answer (router.ts), sent as raw link bodies to
 * peers that take them. As JSON, every forwarded tell's ref, payload and options were built into
 * objects, stringified and parsed again, and the owner serialized the payload once more for its
 * mailbox entry: 11% of the nodes' CPU when clients sent tells to nodes that did not own them
 * (docs/cluster.md, twelfth session). Here the payload travels as the JSON text the client sent.
 *
 * Layout (unit-codec.ts: the body's encoding, count, str and flag), version 1:
 *
 *   request:  count(tells), per tell:  str(type) str(id) str(payload JSON) str(messageId) str(from)
 *   answer:   count(outcomes), per outcome:  'a' str(seq as decimal) str(messageId) flag(duplicate)
 *                                          | 'e' str(code) str(error)
 *
 * An empty messageId or from means none; an empty payload is an undefined one (JSON has no such text).
 */
import type { TellAck } from '../runtime/envelope.js';
import type { ActorRef } from '../runtime/ref.js';
import { UnitReader, UnitWriter } from './unit-codec.js';

const VERSION = 1;

export interface ForwardedTell {
  ref: ActorRef;
  payloadJson: string;
  messageId?: string;
  from?: string;
}

/** One tell's outcome: its ack, or its error's code and message. */
export type TellOutcome = { ack: TellAck; code?: undefined; error?: undefined } | { ack?: undefined; code: string; error: string };

export function encodeForwardedTells(tells: readonly ForwardedTell[]): Buffer {
  const w = new UnitWriter();
  w.count(tells.length);
  for (const t of tells) {
    w.str(t.ref.type);
    w.str(t.ref.id);
    w.str(t.payloadJson);
    w.str(t.messageId ?? '');
    w.str(t.from ?? '');
  }
  return w.finish(VERSION);
}

/** Throws InvalidArgumentError when `bytes` is not a request this version encodes. Refs are not validated here. */
export function decodeForwardedTells(bytes: Uint8Array): ForwardedTell[] {
  const r = new UnitReader(bytes, 'actor.tells request', VERSION);
  const tells: ForwardedTell[] = [];
  for (let n = r.count(); n > 0; n--) {
    const ref = { type: r.str(), id: r.str() };
    const payloadJson = r.str();
    const messageId = r.str();
    const from = r.str();
    const tell: ForwardedTell = { ref, payloadJson };
    if (messageId !== '') tell.messageId = messageId;
    if (from !== '') tell.from = from;
    tells.push(tell);
  }
  r.end('tell');
  return tells;
}

export function encodeTellOutcomes(outcomes: readonly TellOutcome[]): Buffer {
  const w = new UnitWriter();
  w.count(outcomes.length);
  for (const o of outcomes) {
    if (o.ack) {
      w.tag('a');
      w.str(String(o.ack.seq));
      w.str(o.ack.messageId);
      w.flag(o.ack.duplicate);
    } else {
      w.tag('e');
      w.str(o.code);
      w.str(o.error);
    }
  }
  return w.finish(VERSION);
}

/** Throws InvalidArgumentError when `bytes` is not an answer this version encodes. */
export function decodeTellOutcomes(bytes: Uint8Array): TellOutcome[] {
  const r = new UnitReader(bytes, 'actor.tells answer', VERSION);
  const outcomes: TellOutcome[] = [];
  for (let n = r.count(); n > 0; n--) {
    const kind = r.unit();
    if (kind === 0x61) {
      const seq = Number(r.str());
      if (!Number.isSafeInteger(seq) || seq < 0) throw r.malformed('seq');
      outcomes.push({ ack: { seq, messageId: r.str(), duplicate: r.flag() } });
    } else if (kind === 0x65) {
      outcomes.push({ code: r.str(), error: r.str() });
    } else {
      throw r.malformed(`outcome kind ${kind}`);
    }
  }
  r.end('outcome');
  return outcomes;
}
