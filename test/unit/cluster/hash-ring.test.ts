import { describe, expect, it } from 'vitest';
import { DEFAULT_VNODES, HashRing } from '../../../src/cluster/hash-ring.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import { pick, randomInt, randomKey, seededRandom, shuffled } from '../../support/seeded-random.js';

const FIVE = ['n0', 'n1', 'n2', 'n3', 'n4'];

function keys(count: number, prefix = 'counter/'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

function owners(ring: HashRing, ks: readonly string[]): Map<string, string | undefined> {
  return new Map(ks.map((k) => [k, ring.owner(k)]));
}

/** A random set of 1..maxNodes distinct node ids, shaped like real ones. */
function randomNodes(random: () => number, maxNodes: number): string[] {
  const count = 1 + randomInt(random, maxNodes);
  const ids = new Set<string>();
  while (ids.size < count) {
    ids.add(pick(random, [`node-${randomInt(random, 1000)}`, `127.0.0.1:${7000 + randomInt(random, 1000)}`, randomKey(random)]));
  }
  return [...ids];
}

describe('HashRing construction', () => {
  it('sorts and freezes its node ids and defaults to 128 vnodes', () => {
    const ring = HashRing.of(['c', 'a', 'b']);
    expect(ring.nodes).toEqual(['a', 'b', 'c']);
    expect(Object.isFrozen(ring.nodes)).toBe(true);
    expect(ring.vnodes).toBe(DEFAULT_VNODES);
    expect(DEFAULT_VNODES).toBe(128);
    expect(ring.size).toBe(3);
    expect(ring.has('b')).toBe(true);
    expect(ring.has('d')).toBe(false);
  });

  it('does not keep a reference to the caller array', () => {
    const ids = ['a', 'b'];
    const ring = HashRing.of(ids);
    ids.push('c');
    expect(ring.nodes).toEqual(['a', 'b']);
  });

  it('rejects empty, non-string, duplicate and __proto__ ids with InvalidArgumentError', () => {
    expect(() => HashRing.of(['a', ''])).toThrow(InvalidArgumentError);
    expect(() => HashRing.of(['a', 'b', 'a'])).toThrow(InvalidArgumentError);
    expect(() => HashRing.of(['a', 'b', 'a'])).toThrow(/given twice/);
    expect(() => HashRing.of([42 as unknown as string])).toThrow(InvalidArgumentError);
    expect(() => HashRing.of(['__proto__'])).toThrow(InvalidArgumentError);
  });

  it('rejects vnodes that are not an integer >= 1 with RangeError', () => {
    for (const vnodes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => HashRing.of(['a'], { vnodes })).toThrow(RangeError);
    }
    expect(HashRing.of(['a', 'b'], { vnodes: 1 }).vnodes).toBe(1);
  });

  it('an empty ring has no owner and an empty preference list', () => {
    const ring = HashRing.of([]);
    expect(ring.size).toBe(0);
    expect(ring.owner('x')).toBeUndefined();
    expect(ring.preferenceList('x', 3)).toEqual([]);
    expect(HashRing.of(['a']).without('a').owner('x')).toBeUndefined();
  });

  it('a single node owns every key', () => {
    const ring = HashRing.of(['only']);
    for (const k of keys(200)) {
      expect(ring.owner(k)).toBe('only');
      expect(ring.preferenceList(k, 3)).toEqual(['only']);
    }
  });

  it('returns ids with colons, dots and non-ASCII characters exactly as given', () => {
    const ids = ['127.0.0.1:7000', '127.0.0.1:7001', 'nœud-日本', 'constructor'];
    const ring = HashRing.of(ids);
    const seen = new Set(keys(2_000).map((k) => ring.owner(k)));
    expect([...seen].sort()).toEqual([...ids].sort());
  });
});

describe('HashRing with/without', () => {
  it('return new rings and leave the original untouched', () => {
    const ring = HashRing.of(FIVE);
    const before = owners(ring, keys(1_000));
    const grown = ring.with('n5');
    const shrunk = ring.without('n2');
    expect(grown).not.toBe(ring);
    expect(shrunk).not.toBe(ring);
    expect(ring.nodes).toEqual(FIVE);
    expect(grown.nodes).toEqual([...FIVE, 'n5']);
    expect(shrunk.nodes).toEqual(['n0', 'n1', 'n3', 'n4']);
    expect(owners(ring, keys(1_000))).toEqual(before);
  });

  it('adding a present node or removing an absent one returns the same ring', () => {
    const ring = HashRing.of(FIVE);
    expect(ring.with('n3')).toBe(ring);
    expect(ring.without('n9')).toBe(ring);
  });

  it('with() rejects the ids of() rejects', () => {
    const ring = HashRing.of(FIVE);
    expect(() => ring.with('')).toThrow(InvalidArgumentError);
    expect(() => ring.with('__proto__')).toThrow(InvalidArgumentError);
  });

  it('a ring grown or shrunk node by node equals the ring built at once', () => {
    const random = seededRandom(7);
    for (let trial = 0; trial < 10; trial++) {
      const ids = randomNodes(random, 8);
      let ring = HashRing.of([], { vnodes: 32 });
      for (const id of shuffled(random, ids)) ring = ring.with(id);
      const direct = HashRing.of(ids, { vnodes: 32 });
      expect(ring.nodes).toEqual(direct.nodes);
      const ks = Array.from({ length: 300 }, () => randomKey(random));
      expect(owners(ring, ks)).toEqual(owners(direct, ks));
    }
  });
});

describe('HashRing lookups', () => {
  it('owner is stable for keys that are also Object.prototype names', () => {
    const ring = HashRing.of(FIVE);
    const special = ['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf', ''];
    const first = special.map((k) => ring.owner(k));
    for (const o of first) expect(FIVE).toContain(o);
    expect(special.map((k) => ring.owner(k))).toEqual(first);
    expect(special.map((k) => HashRing.of(FIVE).owner(k))).toEqual(first);
    expect(({} as Record<string, unknown>)['value']).toBeUndefined();
  });

  it('preferenceList rejects n that is not an integer >= 0 and gives [] for n = 0', () => {
    const ring = HashRing.of(FIVE);
    expect(ring.preferenceList('k', 0)).toEqual([]);
    expect(() => ring.preferenceList('k', -1)).toThrow(RangeError);
    expect(() => ring.preferenceList('k', 1.5)).toThrow(RangeError);
    expect(() => ring.preferenceList('k', Number.NaN)).toThrow(RangeError);
  });

  it('preferenceList is capped at the number of nodes and then holds every node', () => {
    const ring = HashRing.of(FIVE);
    for (const k of keys(200)) {
      const list = ring.preferenceList(k, 50);
      expect(list).toHaveLength(5);
      expect([...list].sort()).toEqual(FIVE);
    }
  });
});

describe('HashRing properties (seeded random inputs)', () => {
  it('determinism: rings from the same nodes in any order agree on every key', () => {
    const random = seededRandom(1);
    for (let trial = 0; trial < 25; trial++) {
      const ids = randomNodes(random, 10);
      const vnodes = pick(random, [1, 7, 40, 100, 128]);
      const a = HashRing.of(ids, { vnodes });
      const b = HashRing.of(shuffled(random, ids), { vnodes });
      expect(b.nodes).toEqual(a.nodes);
      for (let i = 0; i < 200; i++) {
        const k = randomKey(random);
        expect(b.owner(k)).toBe(a.owner(k));
        expect(b.preferenceList(k, 3)).toEqual(a.preferenceList(k, 3));
      }
    }
  });

  it('preferenceList has distinct members, starts with the owner, and shorter lists are prefixes', () => {
    const random = seededRandom(2);
    for (let trial = 0; trial < 25; trial++) {
      const ring = HashRing.of(randomNodes(random, 9), { vnodes: pick(random, [1, 16, 128]) });
      for (let i = 0; i < 100; i++) {
        const k = randomKey(random);
        const n = 1 + randomInt(random, 12);
        const list = ring.preferenceList(k, n);
        expect(list).toHaveLength(Math.min(n, ring.size));
        expect(new Set(list).size).toBe(list.length);
        expect(list[0]).toBe(ring.owner(k));
        for (const id of list) expect(ring.has(id)).toBe(true);
        expect(ring.preferenceList(k, ring.size).slice(0, list.length)).toEqual(list);
      }
    }
  });

  it('adding a node only moves keys to the new node', () => {
    const random = seededRandom(3);
    let moved = 0;
    for (let trial = 0; trial < 25; trial++) {
      const ids = randomNodes(random, 9);
      const vnodes = pick(random, [1, 3, 7, 40, 100, 128]);
      let added = `new-${randomInt(random, 1_000_000)}`;
      while (ids.includes(added)) added += 'x';
      const before = HashRing.of(ids, { vnodes });
      const after = before.with(added);
      for (let i = 0; i < 300; i++) {
        const k = randomKey(random);
        const was = before.owner(k);
        const now = after.owner(k);
        if (now !== was) {
          expect(now).toBe(added);
          moved++;
        }
      }
    }
    // The property would hold trivially if nothing ever moved.
    expect(moved).toBeGreaterThan(0);
  });

  it('removing a node only moves the keys it owned, each to its next node clockwise', () => {
    const random = seededRandom(4);
    for (let trial = 0; trial < 25; trial++) {
      const ids = randomNodes(random, 9);
      if (ids.length < 2) continue;
      const vnodes = pick(random, [1, 3, 7, 40, 100, 128]);
      const removed = pick(random, ids);
      const before = HashRing.of(ids, { vnodes });
      const after = before.without(removed);
      for (let i = 0; i < 300; i++) {
        const k = randomKey(random);
        const full = before.preferenceList(k, before.size);
        if (full[0] !== removed) expect(after.owner(k)).toBe(full[0]);
        // Every other node keeps its place in the key's order: replicas shift up by one at most.
        expect(after.preferenceList(k, after.size)).toEqual(full.filter((id) => id !== removed));
      }
    }
  });

  it('rough balance: with 5 nodes and 10,000 keys every node owns 10% to 30%', () => {
    const ring = HashRing.of(FIVE);
    const counts = new Map<string, number>(FIVE.map((id) => [id, 0]));
    for (const k of keys(10_000)) {
      const o = ring.owner(k) as string;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const id of FIVE) {
      const share = (counts.get(id) ?? 0) / 10_000;
      expect(share).toBeGreaterThanOrEqual(0.1);
      expect(share).toBeLessThanOrEqual(0.3);
    }
  });

  it('a sixth node takes about a sixth of the keys (minimal disruption)', () => {
    const ks = keys(6_000, 'epum/');
    const before = HashRing.of(FIVE);
    const after = before.with('n5');
    let moved = 0;
    for (const k of ks) if (before.owner(k) !== after.owner(k)) moved++;
    expect(moved / ks.length).toBeGreaterThan(0.08);
    expect(moved / ks.length).toBeLessThan(0.3);
  });
});
