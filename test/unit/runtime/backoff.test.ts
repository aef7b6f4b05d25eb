import { describe, expect, it } from 'vitest';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from '../../../src/runtime/backoff.js';

/** random() == 0.5 puts the jitter spread at exactly 0. */
const MIDDLE = (): number => 0.5;
const LOWEST = (): number => 0;
/** The largest value Math.random() can return. */
const HIGHEST = (): number => 1 - Number.EPSILON;

const noJitter: BackoffOptions = { initialMs: 10, maxMs: 1_000, multiplier: 2, jitter: 0 };

function delays(backoff: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => backoff.next());
}

describe('Backoff', () => {
  it('starts at initialMs and grows by the multiplier per attempt', () => {
    const backoff = new Backoff(noJitter, MIDDLE);
    expect(delays(backoff, 5)).toEqual([10, 20, 40, 80, 160]);
    expect(backoff.attempts).toBe(5);
  });

  it('grows by a non-integer multiplier, rounded to whole ms', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, multiplier: 1.5, jitter: 0 }, MIDDLE);
    expect(delays(backoff, 4)).toEqual([100, 150, 225, 338]);
  });

  it('never exceeds maxMs, however many attempts', () => {
    const backoff = new Backoff({ initialMs: 10, maxMs: 100, multiplier: 2, jitter: 0 }, MIDDLE);
    expect(delays(backoff, 8)).toEqual([10, 20, 40, 80, 100, 100, 100, 100]);
    for (let i = 0; i < 2_000; i++) expect(backoff.next()).toBe(100);
  });

  it('reset() starts the sequence again from initialMs', () => {
    const backoff = new Backoff(noJitter, MIDDLE);
    delays(backoff, 4);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(delays(backoff, 3)).toEqual([10, 20, 40]);
  });

  it('keeps a jittered delay within +-jitter of the base delay', () => {
    const options: BackoffOptions = { initialMs: 100, maxMs: 100_000, multiplier: 2, jitter: 0.2 };
    const low = new Backoff(options, LOWEST);
    const high = new Backoff(options, HIGHEST);
    const bases = [100, 200, 400, 800, 1_600];
    expect(delays(low, 5)).toEqual(bases.map((b) => b * 0.8));
    expect(delays(high, 5)).toEqual(bases.map((b) => b * 1.2));
  });

  it('spreads delays between the bounds as random() varies', () => {
    const options: BackoffOptions = { initialMs: 1_000, maxMs: 1_000, multiplier: 2, jitter: 0.5 };
    const seen = new Set<number>();
    for (const r of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1 - Number.EPSILON]) {
      const d = new Backoff(options, () => r).next();
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1_000);
      seen.add(d);
    }
    // Above the middle the jittered delay would pass maxMs and is capped there.
    expect([...seen].sort((a, b) => a - b)).toEqual([500, 600, 750, 1_000]);
  });

  it('caps a jittered delay at maxMs and never returns a negative delay', () => {
    const capped = new Backoff({ initialMs: 90, maxMs: 100, multiplier: 2, jitter: 0.5 }, HIGHEST);
    expect(delays(capped, 4)).toEqual([100, 100, 100, 100]);
    const zero = new Backoff({ initialMs: 0, maxMs: 0, multiplier: 1, jitter: 0.9 }, LOWEST);
    expect(delays(zero, 3)).toEqual([0, 0, 0]);
  });

  it('uses DEFAULT_BACKOFF when given no options', () => {
    const backoff = new Backoff(undefined, MIDDLE);
    expect(backoff.next()).toBe(DEFAULT_BACKOFF.initialMs);
    expect(backoff.next()).toBe(DEFAULT_BACKOFF.initialMs * DEFAULT_BACKOFF.multiplier);
  });

  it.each<[string, Partial<BackoffOptions>]>([
    ['negative initialMs', { initialMs: -1 }],
    ['NaN initialMs', { initialMs: Number.NaN }],
    ['maxMs below initialMs', { initialMs: 100, maxMs: 50 }],
    ['NaN maxMs', { maxMs: Number.NaN }],
    ['multiplier below 1', { multiplier: 0.5 }],
    ['NaN multiplier', { multiplier: Number.NaN }],
    ['negative jitter', { jitter: -0.1 }],
    ['jitter of 1', { jitter: 1 }],
    ['NaN jitter', { jitter: Number.NaN }],
  ])('rejects %s with a RangeError', (_, bad) => {
    expect(() => new Backoff({ ...noJitter, ...bad }, MIDDLE)).toThrow(RangeError);
  });
});
