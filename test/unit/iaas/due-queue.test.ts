import { describe, expect, it } from 'vitest';
import { DueQueue, type DueEntry } from '../../../src/iaas/due-queue.js';
import { randomInt, seededRandom } from '../../support/seeded-random.js';

interface Item extends DueEntry {
  name: number;
}

const item = (name: number): Item => ({ name, dueAt: 0, dueSeq: 0, heapIndex: -1 });

/** Pops everything due by `now`, as (name, dueAt) pairs. */
function drain(queue: DueQueue<Item>, now: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let e = queue.popDue(now); e; e = queue.popDue(now)) out.push([e.name, e.dueAt]);
  return out;
}

describe('DueQueue', () => {
  it('pops in due order, equal times in scheduling order, and only what is due', () => {
    const q = new DueQueue<Item>();
    const [a, b, c, d] = [item(1), item(2), item(3), item(4)];
    q.schedule(c, 30);
    q.schedule(a, 10);
    q.schedule(b, 10);
    q.schedule(d, 50);
    expect(drain(q, 30)).toEqual([
      [1, 10],
      [2, 10],
      [3, 30],
    ]);
    expect(q.size).toBe(1);
    expect(q.peek()).toBe(d);
  });

  it('rescheduling moves an entry instead of adding it twice; remove takes it out', () => {
    const q = new DueQueue<Item>();
    const [a, b] = [item(1), item(2)];
    q.schedule(a, 10);
    q.schedule(b, 20);
    q.schedule(a, 30);
    expect(q.size).toBe(2);
    q.remove(b);
    q.remove(b);
    expect(drain(q, 100)).toEqual([[1, 30]]);
    expect(a.heapIndex).toBe(-1);
  });

  it('matches a sorted list under random schedules, moves and removals', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(seed);
      const q = new DueQueue<Item>();
      const items = Array.from({ length: 60 }, (_, i) => item(i));
      const model = new Map<number, { at: number; seq: number }>();
      let seq = 0;
      for (let step = 0; step < 400; step++) {
        const it = items[randomInt(random, items.length)]!;
        if (randomInt(random, 4) === 0) {
          q.remove(it);
          model.delete(it.name);
        } else {
          const at = randomInt(random, 100);
          q.schedule(it, at);
          model.set(it.name, { at, seq: seq++ });
        }
      }
      const expected = [...model.entries()].sort((x, y) => x[1].at - y[1].at || x[1].seq - y[1].seq).map(([name, v]) => [name, v.at]);
      expect(drain(q, 100)).toEqual(expected);
    }
  });
});
