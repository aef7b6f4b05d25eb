/**
 * The consistent-hash ring that places actors on nodes, as an immutable value (Akka's ConsistentHash):
 * adding or removing a node returns a new ring, and bad parameters are rejected at construction.
 *
 * Built on the `hashring` package (ketama: md5, every virtual node puts 4 points on a 32-bit circle).
 * Two details of that package are worked around here rather than left to leak:
 * - Given a plain list of servers it gives each one `floor(1/n * vnodes * n)` virtual nodes, which
 *   floating point rounds down for some ring sizes (3 nodes x 100 vnodes gives 99). A node's points
 *   would then depend on how many other nodes there are, and adding a node would move keys between
 *   two old nodes. We give every node an explicit virtual-node count instead, so a node's points
 *   depend on its id and `vnodes` only.
 * - Its `get(key)` goes through an LRU cache kept in a plain object, which keys such as
 *   `constructor` or `__proto__` corrupt. We look keys up with `range()`, which has no cache.
 * Node ids are sorted before they reach the package, so rings built from the same ids in any order
 * are the same ring, including the order of two points that hash to the same value.
 *
 * Placement (which nodes are eligible for which actor type) is not this module's business: callers
 * build one ring per eligibility class from the live members of that class.
 */
import HashRingLib from 'hashring';
import { InvalidArgumentError } from '../errors.js';

/** How many keys' preference lists a ring remembers before it starts over. */
const MEMO_LIMIT = 200_000;
const NO_NODES: readonly string[] = Object.freeze([]);

/** Options of a HashRing. */
export interface HashRingOptions {
  /**
   * Virtual nodes per node; each puts 4 points on the ring. More spreads keys more evenly and moves
   * fewer at once when a node joins or leaves, at the cost of memory and build time (linear).
   * An integer >= 1; default DEFAULT_VNODES.
   */
  vnodes?: number;
}

/** Default virtual nodes per node: 128 (512 ring points), within about +-10% of a fair share at 5 nodes. */
export const DEFAULT_VNODES = 128;

/**
 * An immutable consistent-hash ring over node ids. Every method is a pure function of the ring's
 * node set and `vnodes`: two rings with the same nodes and vnodes agree on every key, whichever
 * order the ids were given in. Safe to share between any number of callers.
 */
export class HashRing {
  /** The ring's node ids, sorted (by UTF-16 code units, as Array.prototype.sort does). */
  readonly nodes: readonly string[];
  /** Virtual nodes per node. */
  readonly vnodes: number;
  private readonly ring: HashRingLib | undefined;

  private constructor(sortedIds: readonly string[], vnodes: number) {
    this.nodes = Object.freeze([...sortedIds]);
    this.vnodes = vnodes;
    if (sortedIds.length === 0) {
      this.ring = undefined;
    } else {
      // Object.fromEntries defines own properties in the sorted order (integer-like ids come first in
      // any object, but that order too depends only on the set of ids). 'vnode count' 0 only makes
      // the package use each server's explicit count as is (see the top of this file).
      const servers = Object.fromEntries(sortedIds.map((id) => [id, { vnodes }]));
      this.ring = new HashRingLib(servers, 'md5', { 'vnode count': 0, 'max cache size': 1 });
    }
  }

  /**
   * A ring over `nodeIds` (any order). Throws InvalidArgumentError for an empty, non-string or
   * duplicate id, or the id `__proto__` (which the underlying package cannot hold), and RangeError
   * when `options.vnodes` is not an integer >= 1. An empty list gives the empty ring.
   */
  static of(nodeIds: readonly string[], options: HashRingOptions = {}): HashRing {
    const vnodes = options.vnodes ?? DEFAULT_VNODES;
    if (!Number.isInteger(vnodes) || vnodes < 1) {
      throw new RangeError(`hash ring vnodes must be an integer >= 1, got ${String(vnodes)}`);
    }
    const seen = new Set<string>();
    for (const id of nodeIds) {
      checkNodeId(id);
      if (seen.has(id)) throw new InvalidArgumentError(`hash ring node id ${JSON.stringify(id)} given twice`);
      seen.add(id);
    }
    return new HashRing([...seen].sort(), vnodes);
  }

  /** Number of nodes on the ring. */
  get size(): number {
    return this.nodes.length;
  }

  /** Whether `nodeId` is on the ring. */
  has(nodeId: string): boolean {
    return this.nodes.includes(nodeId);
  }

  /**
   * This ring plus `nodeId`, as a new ring; `this` is unchanged. Only keys whose owner becomes
   * `nodeId` change owner. Adding a node that is already on the ring returns `this` (the same value).
   * Throws InvalidArgumentError for an id `of` would reject.
   */
  with(nodeId: string): HashRing {
    checkNodeId(nodeId);
    if (this.has(nodeId)) return this;
    return new HashRing([...this.nodes, nodeId].sort(), this.vnodes);
  }

  /**
   * This ring without `nodeId`, as a new ring; `this` is unchanged. Only the keys `nodeId` owned change
   * owner. Removing a node that is not on the ring returns `this` (the same value).
   */
  without(nodeId: string): HashRing {
    if (!this.has(nodeId)) return this;
    return new HashRing(
      this.nodes.filter((id) => id !== nodeId),
      this.vnodes,
    );
  }

  /** The node that owns `key`: the first node clockwise from the key's hash; undefined on an empty ring. */
  owner(key: string): string | undefined {
    return this.ring?.range(key, 1, true)[0];
  }

  /**
   * The first `n` distinct nodes clockwise from `key`'s hash: the owner first, then the replicas in
   * the order they take over. Fewer than `n` when the ring has fewer nodes; [] on an empty ring or
   * for n = 0. For a fixed key, preferenceList(key, m) is a prefix of preferenceList(key, n) when
   * m <= n. Throws RangeError when `n` is not an integer >= 0.
   */
  preferenceList(key: string, n: number): string[] {
    return [...this.remembered(key, n)];
  }

  /** preferenceList without the copy, for callers that only read it (the owner of every call). */
  remembered(key: string, n: number): readonly string[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`preference list length must be an integer >= 0, got ${String(n)}`);
    // range(key, 0) would mean "all nodes" to the package, hence the explicit check.
    if (n === 0 || this.ring === undefined) return NO_NODES;
    // The ring never changes, so lists are remembered: each lookup hashes the key (md5), and the
    // router, the replicator and the hand-off ask for the same keys over and over.
    if (n === this.memoN) {
      const known = this.memo.get(key);
      if (known) return known;
    }
    const list = this.ring.range(key, Math.min(n, this.nodes.length), true);
    if (this.memoN === undefined) this.memoN = n;
    if (n === this.memoN) {
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(key, list);
    }
    return list;
  }

  private memo = new Map<string, string[]>();
  /** The list length remembered (one per ring: the cluster asks for R). */
  private memoN: number | undefined;
}

function checkNodeId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidArgumentError(`hash ring node id must be a non-empty string, got ${JSON.stringify(id)}`);
  }
  if (id === '__proto__') throw new InvalidArgumentError('hash ring node id "__proto__" is not allowed');
}
