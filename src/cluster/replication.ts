/**
 * Replication of actors' writes to their replicas, and the replica's side of it.
 *
 * The owner gives every write of an actor (the same LevelDB ops it writes locally, in the store's
 * key layout) to the actor's replicas. Writes to one peer in one macrotask are batched into one
 * `repl.write` request, and batches are sent in order on the peer's link; the replica applies each
 * batch as one group-committed write and answers. A batch not answered (the link dropped) is sent
 * again, together with every later batch, in the original order, once a link is back: re-applying
 * puts and deletes in order gives the same result, so resending is safe. A peer that is no longer
 * live (down, left) stops being waited for: its batches resolve, and the actor's copies are
 * restored to R by hand-off (handoff.ts) on the new rings.
 *
 * Epochs: every batch carries the sender's ownership epoch (the view version at which its rings last
 * changed). A replica whose own view is newer and names another owner for an actor refuses that
 * actor's ops; the sender's write then fails (UNAVAILABLE) and its caller retries at the new owner.
 *
 * Only the refused actors' writes fail; the rest of the batch is applied. The refused owner stops
 * taking those actors' mail for a moment, for its view to catch up (RingPlacement.disown).
 *
 * Methods: repl.write { from, epoch, sync, entries: [refKey, ops][] } -> { rejected: refKey[] }; the
 * request travels in repl-codec.ts's binary form to peers whose hello says they take raw bodies.
 */
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Replicator } from '../runtime/placement.js';
import { keys, type Op, type Store } from '../runtime/store.js';
import type { CopyTrust } from './copy-trust.js';
import { joinWrites, type WriteDone } from '../runtime/write-done.js';
import { soon } from '../runtime/microtask.js';
import { SEED, decodeWriteRequest, encodeWriteRequest, type Entry, type WriteRequest } from './repl-codec.js';
import { parseRefKey, type ActorRef } from '../runtime/ref.js';
import { UnavailableError, errorMessage } from '../errors.js';
import type { RingPlacement } from './ring-placement.js';
import type { Link, Transport } from './transport.js';
import type { SubHandler } from './membership-service.js';

interface Batch {
  entries: Entry[];
  /** Each entry's writer, told when the batch is answered: entries[i] is waiters[i]'s. */
  waiters: WriteDone[];
  sync: boolean;
  epoch: number;
  /** Answered once; it stays in the unacked list until every batch before it is answered too. */
  acked: boolean;
  /** Made only for drain, which waits for the batch however it ends. */
  settled?: Promise<void>;
  onSettled?: () => void;
}

/** Tells every writer of `batch` its outcome: only the refused actors' writes fail. */
function answer(batch: Batch, peer: string, refused: ReadonlySet<string> | undefined, err?: unknown): void {
  batch.acked = true;
  batch.onSettled?.();
  for (let i = 0; i < batch.entries.length; i++) {
    const key = batch.entries[i]![0];
    if (err !== undefined) batch.waiters[i]!(err);
    else if (refused?.has(key)) batch.waiters[i]!(new UnavailableError(`replica ${peer} knows a newer owner of ${key}`));
    else batch.waiters[i]!();
  }
}

const RESEND_MS = 25;

/** A batch sorted out by the replica (ClusterReplicator.plan). */
interface BatchPlan {
  rejected: string[];
  accepted: Array<{ entryOps: Op[]; prefix: string; wipe: boolean }>;
  /** Some accepted entry replaces the stored copy: its keys must be read first. */
  wipes: boolean;
}

const NO_KEYS: ReadonlyMap<string, string[]> = new Map();

interface Issued {
  rejected: string[];
  written: Promise<void>;
}

/**
 * The ordered stream of batches to one replica. A failure resends, in order, every batch from the
 * oldest unanswered one on - including later batches already answered - so the replica re-applies
 * them in the original order and never ends with an older put over a newer delete.
 */
class PeerStream {
  private pending: Batch | undefined;
  private unacked: Batch[] = [];
  private resendScheduled = false;

  constructor(
    private readonly peer: string,
    private readonly owner: ClusterReplicator,
  ) {}

  add(key: string, ops: Op[], sync: boolean, epoch: number, seed: boolean, done: WriteDone): void {
    let batch = this.pending;
    if (!batch) {
      batch = this.pending = { entries: [], waiters: [], sync: false, epoch, acked: false };
      // After this macrotask, not after a few microtasks: grpc-js hands a read's messages over each
      // in its own chain of promises, so a microtask-bounded batch held about one tell (its enqueue
      // and its turn) and every tell cost a request, its answer and a replica write of its own.
      // Batched by macrotask, one read's tells go together (hundreds under load). A cell usually
      // sends a tell's enqueue and turn as one write without the mail at all (cell.ts
      // holdForNextWrite); when they go apart, they still meet in this batch, and the replica's
      // group commit drops the transient mail put with its del instead of writing both.
      setImmediate(() => this.flush());
    }
    batch.entries.push(seed ? [key, ops, SEED] : [key, ops]);
    batch.waiters.push(done);
    if (sync) batch.sync = true;
    batch.epoch = Math.max(batch.epoch, epoch);
  }

  private flush(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    this.unacked.push(batch);
    if (!this.resendScheduled) this.send(batch);
  }

  private send(batch: Batch): void {
    const link = this.owner.linkTo(this.peer);
    if (!link) {
      this.scheduleResend();
      return;
    }
    const request: WriteRequest = { from: this.owner.selfId, epoch: batch.epoch, sync: batch.sync, entries: batch.entries };
    // Binary to peers that take it (repl-codec.ts): no JSON escaping of every key and value.
    const body = link.peer.rawBodies ? encodeWriteRequest(request) : request;
    link.request<{ rejected: string[] }>('repl.write', body, this.owner.requestTimeoutMs).then(
      (reply) => {
        if (!batch.acked) {
          if (reply.rejected.length > 0) {
            // Our copies of these actors now hold turns no one acknowledged: they must not win a merge,
            // and we must not take their mail until our view catches up with the replica's.
            this.owner.refused(reply.rejected);
            answer(batch, this.peer, new Set(reply.rejected));
          } else answer(batch, this.peer, undefined);
        }
        while (this.unacked.length > 0 && this.unacked[0]!.acked) this.unacked.shift();
      },
      () => this.scheduleResend(),
    );
  }

  private scheduleResend(): void {
    if (this.resendScheduled) return;
    this.resendScheduled = true;
    this.owner.clock.setTimer(RESEND_MS, () => {
      this.resendScheduled = false;
      if (!this.owner.stillReplica(this.peer)) {
        // Gone from the live set: nothing more to wait for from it.
        for (const b of this.unacked.splice(0)) if (!b.acked) answer(b, this.peer, undefined);
        return;
      }
      if (!this.owner.linkTo(this.peer)) {
        this.scheduleResend();
        return;
      }
      for (const b of [...this.unacked]) this.send(b);
    });
  }

  /** Fails every batch not answered yet, and forgets them: they will not be sent again. */
  abandon(err: Error): void {
    const batches = [...this.unacked, ...(this.pending ? [this.pending] : [])];
    this.unacked = [];
    this.pending = undefined;
    for (const b of batches) if (!b.acked) answer(b, this.peer, undefined, err);
  }

  /** What a stuck drain is waiting for, for the logs. */
  describe(): { peer: string; unacked: number; answered: number; pending: boolean; resendScheduled: boolean; linked: boolean; live: boolean } {
    return {
      peer: this.peer,
      unacked: this.unacked.filter((b) => !b.acked).length,
      answered: this.unacked.filter((b) => b.acked).length,
      pending: this.pending !== undefined,
      resendScheduled: this.resendScheduled,
      linked: this.owner.linkTo(this.peer) !== undefined,
      live: this.owner.stillReplica(this.peer),
    };
  }

  /** Resolves once everything handed to this stream so far was answered (or the peer left). */
  async drain(): Promise<void> {
    const open = [...this.unacked, ...(this.pending ? [this.pending] : [])].filter((b) => !b.acked);
    await Promise.all(open.map((b) => (b.settled ??= new Promise<void>((resolve) => (b.onSettled = resolve)))));
  }
}

export class ClusterReplicator implements Replicator, SubHandler {
  private readonly streams = new Map<string, PeerStream>();
  /** Per actor, the last write on behalf of peers not yet issued (see exclusive). */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    readonly selfId: string,
    private readonly placement: RingPlacement,
    private readonly transport: Transport,
    private readonly store: Store,
    readonly clock: Clock,
    private readonly log: Logger,
    readonly requestTimeoutMs: number,
    private readonly trust: CopyTrust,
  ) {}

  linkTo(peer: string): Link | undefined {
    return this.transport.link(peer);
  }

  /** A replica refused writes for `refKeys`: it knows another owner. */
  refused(refKeys: string[]): void {
    for (const key of refKeys) {
      this.trust.delete(key);
      this.placement.disown(key);
    }
  }

  stillReplica(peer: string): boolean {
    return this.placement.isLive(peer);
  }

  replicasFor(ref: ActorRef, key: string): readonly string[] {
    return this.placement.replicasOfKey(ref, key);
  }

  replicate(ref: ActorRef, key: string, ops: Op[], sync: boolean, replicas: readonly string[], done: WriteDone, seed = false): void {
    if (replicas.length === 0) {
      soon(() => done());
      return;
    }
    const epoch = this.placement.epoch;
    const each = replicas.length === 1 ? done : joinWrites(replicas.length, done);
    for (const peer of replicas) this.stream(peer).add(key, ops, sync, epoch, seed, each);
  }

  private stream(peer: string): PeerStream {
    let s = this.streams.get(peer);
    if (!s) {
      s = new PeerStream(peer, this);
      this.streams.set(peer, s);
    }
    return s;
  }

  /**
   * This node was declared down while alive (a partition): the writes its replicas have not
   * answered were never acknowledged, and sending them again after healing could put this node's
   * stale ops over the copies of the actors' new owners. They fail instead.
   */
  abandon(): void {
    const err = new UnavailableError(`node ${this.selfId} was declared down: its unreplicated writes are dropped`);
    for (const s of this.streams.values()) s.abandon(err);
  }

  /** The streams with writes still unanswered, for the logs. */
  describe(): ReturnType<PeerStream['describe']>[] {
    return [...this.streams.values()].map((s) => s.describe()).filter((d) => d.unacked > 0 || d.pending);
  }

  /** Resolves once every write handed over so far is on its replicas (or they left). */
  async drain(): Promise<void> {
    await Promise.all([...this.streams.values()].map((s) => s.drain()));
  }

  onMessage(): void {}

  /**
   * Applies a batch. Batches are applied in arrival order even when one must first read the store (a
   * clean slate for an actor it does not trust): each waits until the one before it has issued its
   * write, so the group committer sees them in order, and only then issues its own.
   */
  onRequest(_link: Link, method: string, body: unknown): Promise<unknown> {
    if (method !== 'repl.write') return Promise.reject(new UnavailableError(`unknown method ${method}`));
    let b: WriteRequest;
    try {
      b = body instanceof Uint8Array ? decodeWriteRequest(body) : (body as WriteRequest);
    } catch (err) {
      return Promise.reject(err);
    }
    const refKeys = b.entries.map((e) => e[0]);
    let issued: Promise<Issued>;
    if (refKeys.some((key) => this.tails.has(key))) {
      // Sorted out only once the writes before it issued: a merge among them may change what this
      // replica trusts.
      issued = this.exclusive(refKeys, () => this.issue(this.plan(b), b.sync));
    } else {
      const plan = this.plan(b);
      // The usual batch, with no copy to read first: it issues now, and nothing after it need wait.
      issued = plan.wipes ? this.exclusive(refKeys, () => this.issue(plan, b.sync)) : Promise.resolve(this.writeAccepted(plan, NO_KEYS, b.sync));
    }
    return issued.then(async ({ rejected, written }) => {
      try {
        await written;
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'replica write failed');
        throw err;
      }
      return { rejected };
    });
  }

  /**
   * Runs `fn` once every earlier write on behalf of peers (replicated batches, merged offers) that
   * touches any of the actors `refKeys` has issued its write: per actor, one at a time in arrival
   * order, so a read-merge-write never races another write to the same actor. Writes to other actors
   * do not wait: a fail-over owner's seed must not queue behind a bulk hand-off of unrelated actors.
   */
  exclusive<T>(refKeys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const before: Promise<void>[] = [];
    for (const key of refKeys) {
      const tail = this.tails.get(key);
      if (tail) before.push(tail);
    }
    const run = (before.length === 0 ? Promise.resolve() : Promise.all(before)).then(fn);
    const done = run.then(
      () => {},
      () => {},
    );
    for (const key of refKeys) this.tails.set(key, done);
    void done.then(() => {
      for (const key of refKeys) if (this.tails.get(key) === done) this.tails.delete(key);
    });
    return run;
  }

  /**
   * Which entries of a batch this replica takes, and which replace its copy: a seed replaces it with
   * the owner's. Otherwise, first writes since this node (re)started for this actor: what it holds
   * may carry turns that were never acknowledged, so it starts from a clean slate; the owner's copy
   * follows (its seed on activation, or its offer).
   */
  private plan(b: WriteRequest): BatchPlan {
    const rejected: string[] = [];
    const stale = b.epoch < this.placement.epoch;
    const accepted: BatchPlan['accepted'] = [];
    let wipes = false;
    for (const [key, entryOps, seed] of b.entries) {
      const ref = parseRefKey(key);
      if (stale && this.placement.ownerOf(ref) !== b.from) {
        rejected.push(key);
        continue;
      }
      const wipe = seed === SEED || !this.trust.has(key);
      if (wipe) {
        this.trust.add(key);
        wipes = true;
      }
      accepted.push({ entryOps, prefix: keys.actor(ref), wipe });
    }
    if (rejected.length > 0) this.log.warn({ from: b.from, epoch: b.epoch, ours: this.placement.epoch, rejected: rejected.length, actors: rejected.slice(0, 5) }, 'refused writes from a stale owner');
    return { rejected, accepted, wipes };
  }

  /**
   * Reads the stored keys of the copies the batch wipes, once and together, after one drain: nothing
   * of this batch is written before its end, and other writes on behalf of peers to these actors
   * wait for it (exclusive), so a read per entry would find the same keys.
   */
  private async issue(plan: BatchPlan, sync: boolean): Promise<Issued> {
    const stored = new Map<string, string[]>();
    const wiped = [...new Set(plan.accepted.filter((e) => e.wipe).map((e) => e.prefix))];
    if (wiped.length > 0) {
      await this.store.committer.drain();
      const found = await Promise.all(wiped.map((prefix) => this.store.scanKeys(prefix)));
      wiped.forEach((prefix, i) => stored.set(prefix, found[i]!));
    }
    return this.writeAccepted(plan, stored, sync);
  }

  /** Issues the batch's write: each wiped copy's `stored` keys and earlier ops deleted, then its ops. */
  private writeAccepted(plan: BatchPlan, stored: ReadonlyMap<string, string[]>, sync: boolean): Issued {
    const ops: Op[] = [];
    for (const { entryOps, prefix, wipe } of plan.accepted) {
      if (wipe) {
        const earlier = ops.filter((op) => op.key.startsWith(prefix)).map((op) => op.key);
        for (const k of [...stored.get(prefix)!, ...earlier]) ops.push({ type: 'del', key: k });
      }
      for (const op of entryOps) ops.push(op);
    }
    // Wrapped so that returning it does not wait for the write: the next batch may issue at once.
    return { rejected: plan.rejected, written: ops.length > 0 ? this.store.write(ops, sync) : Promise.resolve() };
  }
}
