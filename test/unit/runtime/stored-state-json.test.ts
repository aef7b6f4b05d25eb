import { describe, expect, it } from 'vitest';
import { storedStateJson } from '../../../src/runtime/cell.js';
import type { StoredState } from '../../../src/runtime/envelope.js';

/** The stored record as JSON.stringify writes it: what storedStateJson must give to the character. */
function reference(v: unknown, h: number, a: number, c: string[], p: string | undefined): string {
  const record: StoredState = { v, h, a };
  if (c.length > 0) record.c = c;
  if (p !== undefined) record.p = p;
  return JSON.stringify(record);
}

describe('storedStateJson', () => {
  it('writes exactly what JSON.stringify of the record writes, around the state JSON already made', () => {
    const states: unknown[] = [undefined, null, 0, 'a "quoted" \u2028 line', { n: 1, nested: { list: [1, 'x', null] } }, [], { skipped: undefined, kept: true }];
    for (const v of states) {
      for (const [c, p] of [
        [[], undefined],
        [['counter/a', 'counter/"b"'], undefined],
        [[], 'sup/root'],
        [['x'], 'p"arent'],
      ] as Array<[string[], string | undefined]>) {
        expect(storedStateJson(JSON.stringify(v), 42, 3, c, p)).toBe(reference(v, 42, 3, c, p));
      }
    }
  });
});
