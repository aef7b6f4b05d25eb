import { describe, expect, it } from 'vitest';
import { decodeForwardedTells, decodeTellOutcomes, encodeForwardedTells, encodeTellOutcomes, type ForwardedTell, type TellOutcome } from '../../../src/cluster/tells-codec.js';

describe('actor.tells binary form', () => {
  it('gives back every tell as it was: payload texts with quotes and non-ASCII, ids, senders, none', () => {
    const tells: ForwardedTell[] = [
      { ref: { type: 'counter', id: 'a' }, payloadJson: '{"add":1}' },
      { ref: { type: 'counter', id: 'ü\ud800' }, payloadJson: '{"s":"\\"€\\""}', messageId: 'm-1', from: 'counter/x' },
      { ref: { type: 'stream', id: 'x'.repeat(300) }, payloadJson: '', messageId: 'route:1' },
    ];
    expect(decodeForwardedTells(encodeForwardedTells(tells))).toEqual(tells);
    expect(decodeForwardedTells(encodeForwardedTells([]))).toEqual([]);
  });

  it('gives back acks and errors in order, seqs past 32 bits included', () => {
    const outcomes: TellOutcome[] = [
      { ack: { seq: 1, messageId: '', duplicate: false } },
      { code: 'INVALID_ARGUMENT', error: 'message rejected by counter: "add" must be a finite number' },
      { ack: { seq: 2 ** 40 + 3, messageId: 'm-1', duplicate: true } },
    ];
    expect(decodeTellOutcomes(encodeTellOutcomes(outcomes))).toEqual(outcomes);
  });

  it('refuses bytes that are not a whole request or answer of this version', () => {
    const good = encodeForwardedTells([{ ref: { type: 'counter', id: 'a' }, payloadJson: '{}' }]);
    expect(() => decodeForwardedTells(good.subarray(0, good.length - 1))).toThrow(/malformed actor.tells request: truncated/);
    expect(() => decodeForwardedTells(Buffer.from('{"items":[]}'))).toThrow(/malformed actor.tells request: first byte 123 names no encoding/);
    expect(() => decodeForwardedTells(Buffer.concat([good, Buffer.from('x')]))).toThrow(/after the last tell/);
    const otherVersion = Buffer.from(good);
    otherVersion[1] = 9;
    expect(() => decodeForwardedTells(otherVersion)).toThrow(/version 9/);
    const answer = encodeTellOutcomes([{ ack: { seq: 5, messageId: '', duplicate: false } }]);
    const badKind = Buffer.from(answer);
    badKind[3] = 0x78;
    expect(() => decodeTellOutcomes(badKind)).toThrow(/outcome kind 120/);
    const badSeq = encodeTellOutcomes([{ ack: { seq: -1, messageId: '', duplicate: false } }]);
    expect(() => decodeTellOutcomes(badSeq)).toThrow(/malformed actor.tells answer: seq/);
  });
});
