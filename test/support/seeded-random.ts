/**
 * Helpers over the seeded generator of src/iaas/seeded-random.ts (mulberry32) for the cluster
 * property tests, so that a failing case fails the same way on every run. Not a test file itself.
 */
import { seededRandom } from '../../src/iaas/seeded-random.js';

export { seededRandom };

/** An integer in [0, n). */
export function randomInt(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** One element of a non-empty array. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  const item = items[randomInt(random, items.length)];
  if (item === undefined) throw new Error('pick from an empty array');
  return item;
}

/** A shuffled copy (Fisher-Yates). */
export function shuffled<T>(random: () => number, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A random printable key of 1 to 24 characters, sometimes with non-ASCII ones. */
export function randomKey(random: () => number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789/-_:.é日🙂';
  const chars = [...alphabet];
  const length = 1 + randomInt(random, 24);
  let key = '';
  for (let i = 0; i < length; i++) key += pick(random, chars);
  return key;
}
