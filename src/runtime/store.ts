/**
 * The node's LevelDB store: every byte a node keeps, in one database under `<data>/db`.
 *
 * Key layout (parts separated by \x00, which ref validation keeps out of types and ids; seqs are
 * 16 hex digits so that keys sort in sequence order):
 *
 *   n\x00id                              node id, created on first start
 *   n\x00format                          store format version (FORMAT_VERSION)
 *   n\x00membership                      what the cluster layer needs to rejoin -> {member, addresses}
 *   n\x00losses                          actors' copies lost with nodes still down (cluster.ts)
 *   r\x00<type>\x00<id>                  registry: the actor exists   -> {created, parent?}
 *   w\x00<type>\x00<id>                  awake index: the actor has mail, timers or outbox to
 *                                        recover on start             -> ""
 *   a\x00<type>\x00<id>\x00s             state record                  -> {v, h, a, c?, p?}
 *                                        v: the actor's state, h: last handled seq, a: activations,
 *                                        c: children (spawn order), p: parent ref key
 *   a\x00<type>\x00<id>\x00m\x00<seq>    mailbox entry                 -> Envelope
 *   a\x00<type>\x00<id>\x00d\x00<msgid>  dedup entry                   -> {s: seq, t: ms}
 *   a\x00<type>\x00<id>\x00t\x00<name>   timer                         -> {at, every?, m}
 *   a\x00<type>\x00<id>\x00x\x00<seq>    dead letter                   -> {e: Envelope, err, n, t}
 *   a\x00<type>\x00<id>\x00o\x00<turn>.<i> outbox entry             -> OutboxItem
 *
 * All of one actor's keys share the prefix `a\x00<type>\x00<id>\x00`, so an activation reads the
 * actor back with one range scan.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Level } from 'level';
import { StoreOpenError, DataLossError } from '../errors.js';
import type { ActorRef } from './ref.js';
import { GroupCommitter, type Op } from './group-commit.js';
import type { WriteDone } from './write-done.js';

export type { Op } from './group-commit.js';

export const FORMAT_VERSION = '1';
const SEP = '\x00';
/** Sorts after every UTF-8 key suffix: the upper bound of a prefix range. */
const HIGHEST = String.fromCodePoint(0x10ffff);
/** Entries scanMany reads per step: an actor's copy is usually a few (state, registry, dedup ids). */
const SCAN_CHUNK = 16;
const SCAN_ITERATORS = 4;

/**
 * Compares keys as LevelDB orders them, by UTF-8 bytes, which is code point order. JavaScript's `<`
 * compares UTF-16 units, and puts a code point above U+FFFF (a surrogate pair) before U+E000-U+FFFF.
 */
export function byteOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a.charCodeAt(k);
    const y = b.charCodeAt(k);
    if (x === y) continue;
    const xPair = x >= 0xd800 && x <= 0xdfff;
    const yPair = y >= 0xd800 && y <= 0xdfff;
    if (xPair !== yPair) return xPair ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

export function seqHex(seq: number): string {
  return seq.toString(16).padStart(16, '0');
}

export const keys = {
  nodeId: `n${SEP}id`,
  format: `n${SEP}format`,
  registry: (ref: ActorRef) => `r${SEP}${ref.type}${SEP}${ref.id}`,
  registryPrefix: (type?: string) => (type ? `r${SEP}${type}${SEP}` : `r${SEP}`),
  awake: (ref: ActorRef) => `w${SEP}${ref.type}${SEP}${ref.id}`,
  awakePrefix: `w${SEP}`,
  actor: (ref: ActorRef) => `a${SEP}${ref.type}${SEP}${ref.id}${SEP}`,
  state: (prefix: string) => `${prefix}s`,
  mail: (prefix: string, seq: number) => `${prefix}m${SEP}${seqHex(seq)}`,
  dedup: (prefix: string, messageId: string) => `${prefix}d${SEP}${messageId}`,
  timer: (prefix: string, name: string) => `${prefix}t${SEP}${name}`,
  dead: (prefix: string, seq: number) => `${prefix}x${SEP}${seqHex(seq)}`,
  outbox: (prefix: string, turnAndIndex: string) => `${prefix}o${SEP}${turnAndIndex}`,
  record: (prefix: string, name: string) => `${prefix}r${SEP}${name}`,
  /** Every key of one kind (`m` mail, `t` timers, `o` outbox, `x` dead letters, ...) under an actor's prefix. */
  kindPrefix: (prefix: string, kind: string) => `${prefix}${kind}${SEP}`,
};

/** Splits a registry or awake key back into a ref. */
export function refFromIndexKey(key: string): ActorRef {
  const first = key.indexOf(SEP);
  const second = key.indexOf(SEP, first + 1);
  return { type: key.slice(first + 1, second), id: key.slice(second + 1) };
}

/** Splits a key under an actor's prefix into its kind and suffix. */
export function splitActorKey(prefix: string, key: string): { kind: string; suffix: string } {
  const rest = key.slice(prefix.length);
  return { kind: rest[0]!, suffix: rest.slice(2) };
}

export function parseStored<T>(key: string, value: string): T {
  try {
    return JSON.parse(value) as T;
  } catch (err) {
    throw new DataLossError(`stored record ${JSON.stringify(key)} is not valid JSON`, { cause: err });
  }
}

export class Store {
  readonly committer: GroupCommitter;

  private constructor(
    readonly db: Level<string, string>,
    readonly dir: string,
    readonly nodeId: string,
  ) {
    this.committer = new GroupCommitter(db);
  }

  /**
   * Opens (creating when absent) the store of data directory `dir`. A directory that another process
   * holds, or whose database is corrupt or not cei's, is refused with StoreOpenError and left as it is.
   */
  static async open(dir: string): Promise<Store> {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new StoreOpenError(`cannot create data directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const path = join(dir, 'db');
    const db = new Level<string, string>(path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new StoreOpenError(`data directory ${dir} is in use by another process (LevelDB lock held)`, { cause: err });
      }
      if (cause?.code === 'LEVEL_CORRUPTION') {
        throw new StoreOpenError(`data directory ${dir} is corrupt (${cause.message}); it was left untouched`, { cause: err });
      }
      throw new StoreOpenError(`cannot open data directory ${dir}: ${cause?.message ?? (err as Error).message}`, { cause: err });
    }
    try {
      const [format, storedId] = await db.getMany([keys.format, keys.nodeId]);
      let nodeId = storedId;
      if (format === undefined) {
        const anyKey = await db.keys({ limit: 1 }).all();
        if (anyKey.length > 0) {
          throw new StoreOpenError(`data directory ${dir} holds a database that is not cei's; it was left untouched`);
        }
        nodeId = `node-${randomBytes(5).toString('hex')}`;
        await db.batch([
          { type: 'put', key: keys.format, value: FORMAT_VERSION },
          { type: 'put', key: keys.nodeId, value: nodeId },
        ], { sync: true });
      } else if (format !== FORMAT_VERSION) {
        throw new StoreOpenError(`data directory ${dir} has store format ${format}; this cei reads format ${FORMAT_VERSION}`);
      } else if (!nodeId || !/^node-[0-9a-f]{10}$/.test(nodeId)) {
        throw new StoreOpenError(`data directory ${dir} has no valid node id; it was left untouched`);
      }
      return new Store(db, dir, nodeId!);
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
  }

  /** Group-committed write; resolves once durable to the level asked (synced or not). */
  write(ops: Op[], sync: boolean): Promise<void> {
    return this.committer.write(ops, sync);
  }

  /** write with a callback instead of a promise (see write-done.ts). */
  writeThen(ops: Op[], sync: boolean, done: WriteDone): void {
    this.committer.writeThen(ops, sync, done);
  }

  get(key: string): Promise<string | undefined> {
    return this.db.get(key);
  }

  /** The values of `keys`, in their order (undefined where absent): one read of the store for them all. */
  getMany(keys: string[]): Promise<Array<string | undefined>> {
    return this.db.getMany(keys);
  }

  /** Every entry whose key starts with `prefix`, in key order. */
  async scan(prefix: string, options: { after?: string; limit?: number } = {}): Promise<Array<[string, string]>> {
    const range = options.after !== undefined ? { gt: options.after } : { gte: prefix };
    return this.db.iterator({ ...range, lt: `${prefix}${HIGHEST}`, limit: options.limit ?? -1 }).all();
  }

  /**
   * scan() of each of `prefixes` (the results in their order), through a few iterators that each
   * go through their prefixes in the store's order: one read of the store per prefix at most instead
   * of an iterator opened and closed for each, SCAN_ITERATORS reads at a time (LevelDB reads wait on
   * libuv's thread pool, four threads by default). What a read brings past its prefix serves the
   * next prefixes first, so neighbouring actors, and prefixes past the end of the store, cost no read
   * of their own (a join's new node scans thousands of prefixes it has nothing under). The iterators
   * have no range: JavaScript orders strings by UTF-16 units and LevelDB by UTF-8 bytes, so a range
   * from the first prefix to the last could leave some out; the prefixes are taken in the store's
   * order (byteOrder). Each iterator reads one snapshot, taken when it opens. `limit`: at most that
   * many entries per prefix (the first ones), and no further reads for a prefix once it has them.
   */
  async scanMany(prefixes: readonly string[], options: { limit?: number } = {}): Promise<Array<Array<[string, string]>>> {
    const limit = options.limit ?? Infinity;
    const out = prefixes.map((): Array<[string, string]> => []);
    const order = prefixes.map((prefix, i) => ({ prefix, i })).sort((x, y) => byteOrder(x.prefix, y.prefix));
    const per = Math.max(1, Math.ceil(order.length / SCAN_ITERATORS));
    const groups: Array<typeof order> = [];
    for (let g = 0; g < order.length; g += per) groups.push(order.slice(g, g + per));
    await Promise.all(
      groups.map(async (group) => {
        const it = this.db.iterator();
        try {
          // Entries read and not yet passed, from `at` on; `ended`: the store holds nothing after them.
          let ahead: Array<[string, string]> = [];
          let at = 0;
          let ended = false;
          let previous: { prefix: string; i: number } | undefined;
          for (const item of group) {
            const { prefix, i } = item;
            if (previous?.prefix === prefix) {
              out[i] = out[previous.i]!.slice();
              continue;
            }
            previous = item;
            while (at < ahead.length && byteOrder(ahead[at]![0], prefix) < 0) at++;
            if (at === ahead.length && !ended) {
              it.seek(prefix);
              ahead = await it.nextv(SCAN_CHUNK);
              at = 0;
              ended = ahead.length < SCAN_CHUNK;
            }
            const found = out[i]!;
            for (;;) {
              while (at < ahead.length && found.length < limit && ahead[at]![0].startsWith(prefix)) found.push(ahead[at++]!);
              // An entry past the prefix, or the end of the store: the prefix has nothing more.
              if (at < ahead.length || ended || found.length >= limit) break;
              ahead = await it.nextv(SCAN_CHUNK);
              at = 0;
              ended = ahead.length < SCAN_CHUNK;
            }
          }
        } finally {
          await it.close();
        }
      }),
    );
    return out;
  }

  async scanKeys(prefix: string, options: { after?: string; limit?: number } = {}): Promise<string[]> {
    const range = options.after !== undefined ? { gt: options.after } : { gte: prefix };
    return this.db.keys({ ...range, lt: `${prefix}${HIGHEST}`, limit: options.limit ?? -1 }).all();
  }

  async close(): Promise<void> {
    await this.committer.drain().catch(() => {});
    await this.db.close();
  }
}
