import { describe, expect, it } from 'vitest';
import { decodeWriteRequest, encodeWriteRequest, type WriteRequest } from '../../../src/cluster/repl-codec.js';
import { pick, randomInt, seededRandom } from '../../support/seeded-random.js';

describe('repl.write binary form', () => {
  it('gives back every key and value as it was: separators, quotes, non-ASCII, lone surrogates, long strings, seeds', () => {
    const long = 'x'.repeat(70_000);
    const req: WriteRequest = {
      from: 'node-1',
      epoch: 12_345_678_901,
      sync: true,
      entries: [
        ['counter/a', [{ type: 'put', key: 'a\x00counter\x00a\x00s', value: '{"v":{"value":1},"h":1,"a":1}' }, { type: 'del', key: 'a\x00counter\x00a\x00m\x00000001' }]],
        ['counter/ü\ud800', [{ type: 'put', key: 'k\ud800\udfff', value: long, transient: true }], 1],
        ['counter/empty', []],
      ],
    };
    expect(decodeWriteRequest(encodeWriteRequest(req))).toEqual(req);
  });

  it('round-trips random batches (seeded), and counts above one code unit', () => {
    const random = seededRandom(7);
    const chars = ['a', '/', '\x00', '"', '\\', 'é', '\u{1f600}', '\ud800', '\uffff'];
    const text = (n: number) => Array.from({ length: n }, () => pick(random, chars)).join('');
    for (let round = 0; round < 50; round++) {
      const entries: WriteRequest['entries'] = Array.from({ length: randomInt(random, 6) }, () => [
        text(1 + randomInt(random, 10)),
        Array.from({ length: randomInt(random, 5) }, () =>
          random() < 0.3 ? { type: 'del' as const, key: text(randomInt(random, 9)) } : { type: 'put' as const, key: text(randomInt(random, 9)), value: text(randomInt(random, 21)) },
        ),
      ]);
      const req: WriteRequest = { from: text(5), epoch: randomInt(random, 1_000_000), sync: random() < 0.5, entries };
      expect(decodeWriteRequest(encodeWriteRequest(req))).toEqual(req);
    }
    const many: WriteRequest = { from: 'n', epoch: 1, sync: false, entries: Array.from({ length: 70_000 }, (_, i) => [`t/${i}`, []]) };
    expect(decodeWriteRequest(encodeWriteRequest(many)).entries).toHaveLength(70_000);
  });

  it('goes as one byte a unit when it can, two when a string needs them', () => {
    const narrow: WriteRequest = { from: 'n', epoch: 3, sync: false, entries: [['counter/a', [{ type: 'put', key: 'a\x00k', value: '{"é":1}' }]]] };
    const wide: WriteRequest = { ...narrow, entries: [['counter/a', [{ type: 'put', key: 'a\x00k', value: '{"€":1}' }]]] };
    const [n, w] = [encodeWriteRequest(narrow), encodeWriteRequest(wide)];
    expect(String.fromCharCode(n[0]!, w[0]!)).toBe('LU');
    expect(w.length).toBe(2 * n.length);
    expect(decodeWriteRequest(n)).toEqual(narrow);
    expect(decodeWriteRequest(w)).toEqual(wide);
  });

  it('refuses bytes that are not a whole batch of this version', () => {
    const req: WriteRequest = { from: 'n', epoch: 3, sync: false, entries: [['counter/a', [{ type: 'del', key: 'k' }]]] };
    const good = encodeWriteRequest(req);
    expect(() => decodeWriteRequest(good.subarray(0, good.length - 1))).toThrow(/malformed repl.write batch: truncated/);
    const wide = encodeWriteRequest({ ...req, from: '\u20ac' });
    expect(() => decodeWriteRequest(wide.subarray(0, wide.length - 1))).toThrow(/odd length/);
    expect(() => decodeWriteRequest(Buffer.from('{"from":"n"}'))).toThrow(/malformed repl.write batch: first byte 123 names no encoding/);
    const otherVersion = Buffer.from(good);
    otherVersion[1] = 2;
    expect(() => decodeWriteRequest(otherVersion)).toThrow(/version 2/);
    expect(() => decodeWriteRequest(Buffer.concat([good, Buffer.from('d')]))).toThrow(/after the last entry/);
  });
});
