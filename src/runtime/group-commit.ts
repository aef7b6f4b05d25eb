import type { Level } from 'level';
import { failureOf, type WriteDone } from './write-done.js';
import { soon } from './microtask.js';

/**
 * A store operation. A put marked `transient` (a mailbox entry) is dropped together with a later del
 * of the same key when both land in the same pending batch: a message handled before its batch was
 * written costs no LevelDB write at all, and the batch stays atomic either way.
 */
export type Op = { type: 'put'; key: string; value: string; transient?: true } | { type: 'del'; key: string };

/**
 * `ops` without the transient puts that a later del of the same key in `ops` undoes, and without
 * those dels: the same result when written as one batch. Any other write of the key in between
 * keeps the pair. Returns `ops` itself when nothing drops out.
 */
export function dropTransientPairs(ops: Op[]): Op[] {
  return ops.length <= SCAN_LIMIT ? dropPairsByScan(ops) : dropPairsByMap(ops);
}

/**
 * Below this many ops a del looks back for the key's latest op instead of keeping a Map: a cell's
 * write (an enqueue's put, then the turn's del and state) is a handful of ops, and the Map and Set
 * were most of what the call cost.
 */
const SCAN_LIMIT = 32;

function dropPairsByScan(ops: Op[]): Op[] {
  // Bit i set: ops[i] drops out (SCAN_LIMIT fits the 32 bits), so a write that drops nothing
  // allocates nothing.
  let gone = 0;
  let dropped = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.type !== 'del') continue;
    for (let j = i - 1; j >= 0; j--) {
      const earlier = ops[j]!;
      if (earlier.key !== op.key) continue;
      // The key's latest op before the del decides: a transient put pairs with it, anything else
      // (a del, a put that is not transient) keeps it.
      if (earlier.type === 'put' && earlier.transient) {
        gone |= (1 << j) | (1 << i);
        dropped += 2;
      }
      break;
    }
  }
  if (dropped === 0) return ops;
  const out = new Array<Op>(ops.length - dropped);
  let k = 0;
  for (let i = 0; i < ops.length; i++) if ((gone & (1 << i)) === 0) out[k++] = ops[i]!;
  return out;
}

function dropPairsByMap(ops: Op[]): Op[] {
  let transient: Map<string, number> | undefined;
  let dropped: Set<number> | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.type === 'put') {
      if (op.transient) (transient ??= new Map()).set(op.key, i);
      else transient?.delete(op.key);
      continue;
    }
    const at = transient?.get(op.key);
    if (at === undefined) continue;
    transient!.delete(op.key);
    (dropped ??= new Set()).add(at).add(i);
  }
  return dropped ? ops.filter((_, i) => !dropped.has(i)) : ops;
}

interface PendingBatch {
  ops: Op[];
  sync: boolean;
  /** The writers' callbacks, in the order they joined. */
  waiters: WriteDone[];
  /** Made only when a caller wants a promise (write, drain): most writers pass a callback. */
  promise?: Promise<void>;
}

/** The batch's promise, settled with its waiters. */
function promiseOf(batch: PendingBatch): Promise<void> {
  batch.promise ??= new Promise<void>((resolve, reject) => batch.waiters.push((err) => (err === undefined ? resolve() : reject(err))));
  return batch.promise;
}

function settle(batch: PendingBatch, err?: unknown): void {
  for (const done of batch.waiters) done(err);
}

/**
 * Group commit: every write issued while a LevelDB write is in flight joins the next batch, and that
 * batch is written with one (synced, when any member asked for sync) chained batch write, so a
 * burst of N writes costs one fsync, not N. Writers take a promise (write) or pass a callback
 * (writeThen); either settles when the batch does.
 *
 * Ordering: batches are written strictly one after another in the order writes were issued, so a
 * write that resolved implies every write issued before it is on disk too.
 */
export class GroupCommitter {
  private pending: PendingBatch | undefined;
  /** The batch being written: drain must wait for it even when nothing is pending. */
  private inFlight: PendingBatch | undefined;
  private writing = false;
  private failed: unknown;
  /** Batches written and ops in them, for metrics and tests. */
  batches = 0;
  opsWritten = 0;
  /** Ops never written because a transient put and its del met in one batch. */
  cancelled = 0;

  constructor(private readonly db: Level<string, string>) {}

  write(ops: Op[], sync: boolean): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return promiseOf(this.join(ops, sync));
  }

  /** write with a callback: `done` runs when the batch `ops` joined is on disk, or failed. Never synchronously. */
  writeThen(ops: Op[], sync: boolean, done: WriteDone): void {
    if (this.failed !== undefined) {
      const failed = this.failed;
      soon(() => done(failed));
      return;
    }
    this.join(ops, sync).waiters.push(done);
  }

  private join(ops: Op[], sync: boolean): PendingBatch {
    let batch = this.pending;
    if (!batch) {
      batch = this.pending = { ops: [], sync: false, waiters: [] };
      // A microtask lets a synchronous burst of writes land in one batch even when nothing is in flight.
      if (!this.writing) soon(() => this.flush());
    }
    for (const op of ops) batch.ops.push(op);
    if (sync) batch.sync = true;
    return batch;
  }

  /**
   * Resolves when everything written so far is on disk. Batches are written in order, so the pending
   * batch covers the one in flight; with none pending, the one in flight is what must land (a
   * read-merge-write that read before it landed would diff against a stale copy).
   */
  drain(): Promise<void> {
    const batch = this.pending ?? this.inFlight;
    return batch ? promiseOf(batch) : Promise.resolve();
  }

  private flush(): void {
    if (this.writing) return;
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    this.writing = true;
    this.inFlight = batch;
    let written: Promise<void>;
    // The pair rule over the whole batch, which holds many writers' ops: the same rule a cell
    // applies to its own write.
    const ops = dropTransientPairs(batch.ops);
    this.cancelled += batch.ops.length - ops.length;
    const count = ops.length;
    try {
      const chained = this.db.batch();
      for (const op of ops) {
        if (op.type === 'put') chained.put(op.key, op.value);
        else chained.del(op.key);
      }
      written = chained.write({ sync: batch.sync });
    } catch (err) {
      // batch() and put() throw synchronously (e.g. the database is closed): fail like a failed write.
      written = Promise.reject(err);
    }
    written.then(
      () => {
        this.batches++;
        this.opsWritten += count;
        this.writing = false;
        this.inFlight = undefined;
        settle(batch);
        if (this.pending) this.flush();
      },
      (reason: unknown) => {
        // A failed write leaves the store in an unknown state for everything after it: fail them all.
        const err = failureOf(reason);
        this.failed = err;
        this.writing = false;
        this.inFlight = undefined;
        const next = this.pending;
        this.pending = undefined;
        settle(batch, err);
        if (next) settle(next, err);
      },
    );
  }
}
