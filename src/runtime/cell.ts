import type { ActorType, Durability, SupervisionOptions } from './actor-type.js';
import type { ActorRef } from './ref.js';
import { parseRefKey, refKey } from './ref.js';
import type { Clock, TimerHandle } from './clock.js';
import type { Logger } from './logger.js';
import { keys, parseStored, splitActorKey, type Op, type Store } from './store.js';
import { DedupWindow, type DedupEntry } from './dedup-window.js';
import { Backoff } from './backoff.js';
import { joinWrites, whenSettled, type WriteDone } from './write-done.js';
import { soon } from './microtask.js';
import { dropTransientPairs } from './group-commit.js';
import { RestartIntensity } from './supervisor.js';
import { DELETED_RECORD, TurnContext, type TurnHost } from './turn-context.js';
import { envelopeJson, type DeadLetterRecord, type Envelope, type OutboxItem, type StoredState, type StoredTimer, type TellAck } from './envelope.js';
import { CeiError, DataLossError, UnconfirmedMessageError, errorMessage } from '../errors.js';
import type { Replicator } from './placement.js';
import type { LocalTellOptions } from './runtime.js';

/** Retries of an outbox item whose target is out of reach for now. */
const OUTBOX_RETRY = { initialMs: 20, maxMs: 2_000, multiplier: 2, jitter: 0.2 };

/**
 * Lifecycle of one actor's incarnation in memory:
 *   loading -> active                 read back from the store
 *   active -> restarting -> active    a handler threw; restart after backoff
 *   active|restarting -> failed       restarts exceeded the root's intensity; mail is kept
 *   failed -> restarting              after the failed cool-down, or on redrive
 *   any -> stopping -> (gone)         Stop
 * Passivation removes an idle active cell from memory; its next message loads a new one.
 */
export type CellStatus = 'loading' | 'active' | 'restarting' | 'failed' | 'stopping';

/** What a cell needs from the actor system around it. */
export interface CellHost extends TurnHost {
  readonly store: Store | undefined;
  readonly clock: Clock;
  readonly log: Logger;
  readonly turnBatch: number;
  /** Set on node shutdown and while fenced: no new turn starts. */
  readonly halted: boolean;
  /** Set on node shutdown only. */
  readonly stopping: boolean;
  readonly replicator: Replicator | undefined;
  dedupWindow(): DedupWindow;
  /** Carries out a committed outbox item; resolves when the target acknowledged it. */
  deliver(from: ActorCell, item: OutboxItem): Promise<void>;
  answer(askId: string, value: unknown): void;
  answerError(askId: string, err: Error): void;
  /** A handler threw: decide restart or escalation. */
  crashed(cell: ActorCell, err: unknown): void;
  /**
   * A write of the cell failed: its memory is ahead of what is durable everywhere it must be, so the
   * cell has to go (it is loaded again from the store on its next call, if this node still owns it).
   */
  writeFailed(cell: ActorCell, err: unknown): void;
  /** Throws a retryable error unless this node may host the actor now (Placement.checkOwner). */
  checkOwner(ref: ActorRef): void;
  /** Why this actor's copies are all out of reach, if they are (Placement.lostCopies). */
  lostCopies(ref: ActorRef): string | undefined;
}

interface LiveTimer extends StoredTimer {
  handle?: TimerHandle;
}

const NO_OPS: Op[] = [];
const NO_OUTBOX: ReadonlyArray<[string, OutboxItem]> = Object.freeze([]) as ReadonlyArray<[string, OutboxItem]>;
const NO_REPLICAS: readonly string[] = Object.freeze([]);

export class ActorCell {
  readonly key: string;
  readonly prefix: string;
  readonly durability: Durability;
  status: CellStatus = 'loading';
  state: unknown;
  /** JSON of the last committed state: what a restart goes back to. */
  private committedJson: string | undefined;
  private committedState: unknown;
  handled = 0;
  nextSeq = 1;
  activations = 0;
  children: string[] = [];
  parent: string | undefined;
  registered = false;
  private awakeWritten = false;

  private queue: Envelope[] = [];
  private head = 0;
  private processing = false;
  private readonly attempts = new Map<number, number>();
  private readonly dedup: DedupWindow;
  readonly timers = new Map<string, LiveTimer>();
  /** The actor's committed records (ActorContext.record). */
  readonly records = new Map<string, unknown>();
  deadCount = 0;
  restartsTotal = 0;
  /** As a supervisor: restarts of this actor's children. */
  readonly childIntensity: RestartIntensity;
  /** Restarts of this actor when the root supervises it (top-level actors). */
  readonly selfIntensity: RestartIntensity;
  readonly backoff: Backoff;
  /** Writes issued and not yet durable, and outbox items not yet acknowledged: passivation waits for both. */
  private writesInFlight = 0;
  /** Enqueues' ops not written yet, and their callbacks, for the write that will carry them. */
  private held: { ops: Op[]; waiters: WriteDone[] } | undefined;
  /**
   * The replicas this incarnation writes to, fixed when it loaded: when the rings give the actor
   * other replicas, the cell is released and its next load seeds them (runtime.releaseNotOwned).
   */
  replicas: readonly string[] = NO_REPLICAS;
  /** The seed of the replicas with this node's whole copy, until they have it (see load). */
  private seeding: Promise<void> | undefined;
  /** The replicas acknowledged the seed: they hold this copy, and get every later write of it. */
  private seeded = false;
  private outboxInFlight = 0;
  private pendingRestart: number | undefined;
  private restartTimer: TimerHandle | undefined;
  lastActive: number;
  readonly ready: Promise<void>;
  private idleWaiters: Array<() => void> = [];
  /** Calls waiting for the load; while any wait, later calls queue behind them to keep call order. */
  private loadWaiters = 0;

  constructor(
    readonly ref: ActorRef,
    readonly type: ActorType,
    readonly supervision: SupervisionOptions,
    private readonly host: CellHost,
  ) {
    this.key = refKey(ref);
    this.prefix = keys.actor(ref);
    this.durability = host.store ? (type.durability ?? 'sync') : 'memory';
    this.dedup = host.dedupWindow();
    this.childIntensity = new RestartIntensity(supervision.maxRestarts, supervision.withinMs);
    this.selfIntensity = new RestartIntensity(supervision.maxRestarts, supervision.withinMs);
    this.backoff = new Backoff({ initialMs: supervision.backoffInitialMs, maxMs: supervision.backoffMaxMs, multiplier: 2, jitter: 0.1 });
    this.lastActive = host.clock.now();
    this.ready = this.durability === 'memory' ? this.startFresh() : this.load();
  }

  private get stored(): boolean {
    return this.durability !== 'memory';
  }

  private get sync(): boolean {
    return this.durability === 'sync';
  }

  /** Loaded, and no call is still waiting for the load: a call may go straight to the cell. */
  get loaded(): boolean {
    return this.status !== 'loading' && this.loadWaiters === 0;
  }

  /** Runs `fn` once the cell is loaded, after every call that arrived before it. */
  whenLoaded<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.status !== 'loading' && this.loadWaiters === 0) return Promise.resolve(fn());
    this.loadWaiters++;
    return this.ready.then(() => {
      this.loadWaiters--;
      return fn();
    });
  }

  /** Spawn: gives a never-seen actor its initial state from `init`. False when it already existed. */
  async initialize(init: unknown, parent: string | undefined): Promise<boolean> {
    if (this.registered) return false;
    this.registered = true;
    this.state = this.type.initialState(init);
    this.parent = parent;
    if (!this.stored) {
      this.committedState = this.state;
    } else {
      this.committedJson = JSON.stringify(this.state);
      await this.writeAwaited([
        { type: 'put', key: keys.registry(this.ref), value: JSON.stringify({ created: this.host.clock.now(), parent }) },
        { type: 'put', key: keys.state(this.prefix), value: storedStateJson(this.committedJson, this.handled, this.activations, this.children, parent) },
      ]);
    }
    // The activation that loaded this cell ran on the virtual initial state replaced above: the spawned
    // state gets its own (a restart in progress runs it anyway).
    if (this.type.onActivate && this.status === 'active' && !this.processing) await this.activate();
    return true;
  }

  forgetChild(key: string): void {
    this.children = this.children.filter((c) => c !== key);
  }

  /** Starts turns again if mail is waiting (after the node was fenced). */
  kick(): void {
    this.schedule();
  }

  /** Takes no further turn (node shutdown). */
  halt(): void {
    this.restartTimer?.cancel();
    for (const t of this.timers.values()) t.handle?.cancel();
  }

  get mailboxDepth(): number {
    return this.queue.length - this.head;
  }

  get isIdle(): boolean {
    return (
      this.status === 'active' &&
      !this.processing &&
      this.mailboxDepth === 0 &&
      this.writesInFlight === 0 &&
      this.held === undefined &&
      this.outboxInFlight === 0 &&
      this.timers.size === 0
    );
  }

  private async startFresh(): Promise<void> {
    this.state = this.type.initialState(undefined);
    this.committedState = this.state;
    this.status = 'active';
    await this.activate();
  }

  /** Reads the actor back from the store with one range scan and resumes whatever it left undone. */
  private async load(): Promise<void> {
    const store = this.host.store!;
    const loadStarted = this.host.clock.now();
    const entries = await store.scan(this.prefix);
    const scanMs = this.host.clock.now() - loadStarted;
    // Ownership may have moved while the scan ran: a cell must not come alive on a node that is not
    // the owner (its writes would go to the wrong replicas). The caller retries at the new owner.
    this.host.checkOwner(this.ref);
    if (entries.length === 0) {
      const lost = this.host.lostCopies(this.ref);
      if (lost !== undefined) throw new DataLossError(lost);
    }
    let stored: StoredState | undefined;
    const mail: Envelope[] = [];
    const dedup: Array<[string, { s: number; t: number }]> = [];
    const outbox: Array<[string, OutboxItem]> = [];
    let lastMailSeq = 0;
    for (const [key, value] of entries) {
      const { kind, suffix } = splitActorKey(this.prefix, key);
      switch (kind) {
        case 's':
          stored = parseStored<StoredState>(key, value);
          break;
        case 'm': {
          const env = parseStored<Envelope>(key, value);
          lastMailSeq = Math.max(lastMailSeq, env.s);
          mail.push(env);
          break;
        }
        case 'd':
          dedup.push([suffix, parseStored(key, value)]);
          break;
        case 't':
          this.timers.set(suffix, parseStored<StoredTimer>(key, value));
          break;
        case 'x':
          this.deadCount++;
          break;
        case 'o':
          outbox.push([key, parseStored<OutboxItem>(key, value)]);
          break;
        case 'r':
          this.records.set(suffix, parseStored(key, value));
          break;
        default:
          throw new DataLossError(`unknown record ${JSON.stringify(key)} in the store of ${this.key}`);
      }
    }
    if (stored?.x) {
      // A stopped actor's tombstone: a fresh start whose seqs continue where the old ones ended, so
      // its outbox ids and dead letters never collide with those of the stopped incarnation.
      this.handled = stored.h;
      this.activations = stored.a ?? 0;
      this.state = this.type.initialState(undefined);
    } else if (stored) {
      if (typeof stored.h !== 'number' || !('v' in stored)) throw new DataLossError(`state record of ${this.key} is malformed`);
      this.state = stored.v;
      this.handled = stored.h;
      this.activations = stored.a ?? 0;
      this.children = stored.c ?? [];
      this.parent = stored.p;
      this.committedJson = JSON.stringify(stored.v);
    } else {
      this.state = this.type.initialState(undefined);
    }
    this.committedState = this.state;
    // The registry entry is written in the same batch as an actor's first mail or state (and deleted
    // with the tombstone on stop), so it exists exactly when one of those does: no extra read.
    this.registered = (stored !== undefined && !stored.x) || mail.length > 0;
    this.nextSeq = Math.max(this.handled, lastMailSeq) + 1;
    const now = this.host.clock.now();
    dedup.sort((a, b) => a[1].t - b[1].t);
    const expired: Op[] = [];
    for (const [id, e] of dedup) {
      for (const gone of this.dedup.add(id, { seq: e.s, at: e.t }, now)) expired.push({ type: 'del', key: keys.dedup(this.prefix, gone) });
    }
    const queue: Envelope[] = [];
    for (const env of mail) {
      if (env.s > this.handled) queue.push(env);
      // Handled already, its removal lost: a replica that applied a resent batch can keep an
      // enqueue's put whose del dropped out with the resent copy (docs/cluster.md). Never again
      // handled, and removed now.
      else expired.push({ type: 'del', key: keys.mail(this.prefix, env.s) });
    }
    this.queue = queue.sort((a, b) => a.s - b.s);
    this.awakeWritten = this.queue.length > 0 || this.timers.size > 0 || outbox.length > 0;
    const readMs = this.host.clock.now() - loadStarted;
    const replicator = this.host.replicator;
    if (replicator) {
      this.replicas = replicator.replicasFor(this.ref, this.key);
      if (this.replicas.length > 0) await this.seed(replicator, entries);
    }
    this.host.log.debug({ actor: this.key, handled: this.handled, pending: this.queue.length, dedup: dedup.length, scanMs, readMs, ms: this.host.clock.now() - loadStarted }, 'actor loaded');
    if (expired.length > 0) this.write(expired);
    this.status = 'active';
    await this.activate();
    for (const [key, item] of outbox) this.deliverCommitted(key, item);
    for (const name of this.timers.keys()) this.scheduleTimer(name);
  }

  /**
   * Sends this node's whole copy of the actor to its replicas, which replace theirs with it. Whatever
   * they held may be older (a replica new to the actor) or carry turns never acknowledged (a node
   * back from a crash): after the seed, owner and replicas hold the same copy. No write of this
   * incarnation is acknowledged, and no duplicate confirmed, before the seed is in.
   */
  private async seed(replicator: Replicator, entries: Array<[string, string]>): Promise<void> {
    const ops: Op[] = entries.map(([key, value]) => ({ type: 'put', key, value }));
    const registry = this.registered ? await this.host.store!.get(keys.registry(this.ref)) : undefined;
    ops.push(registry !== undefined ? { type: 'put', key: keys.registry(this.ref), value: registry } : { type: 'del', key: keys.registry(this.ref) });
    ops.push(this.awakeWritten ? { type: 'put', key: keys.awake(this.ref), value: '' } : { type: 'del', key: keys.awake(this.ref) });
    const seeding = new Promise<void>((resolve, reject) =>
      this.tracked((err) => (err === undefined ? resolve() : reject(err)), (done) => replicator.replicate(this.ref, this.key, ops, this.sync, this.replicas, done, true)),
    );
    this.seeding = seeding;
    seeding.then(
      () => {
        if (this.seeding === seeding) this.seeding = undefined;
        this.seeded = true;
      },
      () => {},
    );
  }

  /** Settles once the replicas acknowledged (or refused) this incarnation's seed; at once when none is in flight. */
  seedSettled(): Promise<void> {
    return this.seeding ? this.seeding.catch(() => {}) : Promise.resolve();
  }

  /**
   * Whether `peer` holds this incarnation's copy: it is one of the pinned replicas and acknowledged
   * the seed (a write that fails later unloads the cell, so a loaded cell's replicas have them all).
   */
  seededTo(peer: string): boolean {
    return this.seeded && this.status !== 'loading' && this.status !== 'stopping' && this.replicas.includes(peer);
  }

  /** Runs the type's onActivate hook (on load and on every restart) as a turn of its own. */
  private async activate(): Promise<void> {
    if (!this.type.onActivate) {
      this.schedule();
      return;
    }
    this.activations++;
    const ctx = this.newContext();
    ctx.begin(undefined, this.handled, `a${this.activations}`);
    // The hook is a turn: no message may be handled while it runs, or its result would overwrite
    // that message's effect.
    this.processing = true;
    let next: unknown;
    try {
      next = await this.type.onActivate(this.state, ctx);
    } catch (err) {
      this.processing = false;
      this.host.log.error({ actor: this.key, err: errorMessage(err) }, 'onActivate failed');
      this.host.crashed(this, err);
      return;
    }
    this.processing = false;
    this.state = next;
    const ops: Op[] = [];
    if (ctx.recordChanges) this.applyRecords(ctx.recordChanges, ops);
    this.commit(ops, ctx, undefined);
    this.schedule();
  }

  private newContext(): TurnContext {
    return new TurnContext(this.ref, this.key, this.host.clock.now(), this.host.log, this.host, this.records);
  }

  /** Marks this actor as known and as having work to recover, in the next write. */
  private markOps(ops: Op[]): void {
    if (!this.registered) {
      this.registered = true;
      ops.push({ type: 'put', key: keys.registry(this.ref), value: JSON.stringify({ created: this.host.clock.now(), parent: this.parent }) });
    }
    if (!this.awakeWritten) {
      this.awakeWritten = true;
      // Transient like the mail itself: when the turn that empties the mailbox lands in the same
      // pending batch, its del of the mark and this put drop out together.
      ops.push({ type: 'put', key: keys.awake(this.ref), value: '', transient: true });
    }
  }

  /**
   * Holds an enqueue's ops for the cell's next write, which is usually the commit of the turn that
   * handles the message, queued just before (see enqueue): the message's put and its removal then
   * drop out together before they reach the store or the replicas, and a tell costs one write, local
   * and replicated, instead of two. A microtask after the first held op, whatever is still held is
   * written on its own, so nothing waits past the turn that would have carried it.
   */
  private holdForNextWrite(ops: Op[], done: WriteDone): void {
    const held = this.held;
    if (held) {
      for (const op of ops) held.ops.push(op);
      held.waiters.push(done);
      return;
    }
    // The enqueue's own array becomes the held one: most writes hold one enqueue.
    const fresh = (this.held = { ops, waiters: [done] });
    soon(() => {
      if (this.held === fresh) this.write(NO_OPS);
    });
  }

  /**
   * Writes `ops` locally and to the replicas; `done`, if given, runs once both have them (or with the
   * first failure). Every write carries the held enqueues first: a write never overtakes them.
   */
  private write(ops: Op[], done?: WriteDone): void {
    const held = this.held;
    if (!held) {
      this.tracked(done, (part) => this.writeNow(ops, part));
      return;
    }
    this.held = undefined;
    // The held array is the enqueues' own and goes nowhere else: the write's ops join it.
    for (const op of ops) held.ops.push(op);
    const all = dropTransientPairs(held.ops);
    this.tracked(
      (err) => {
        for (const waiter of held.waiters) waiter(err);
        done?.(err);
      },
      (part) => this.writeNow(all, part),
    );
  }

  /** write as a promise. */
  private writeAwaited(ops: Op[]): Promise<void> {
    return new Promise((resolve, reject) => this.write(ops, (err) => (err === undefined ? resolve() : reject(err))));
  }

  private writeNow(ops: Op[], done: WriteDone): void {
    // Done once every part is: a refused replica must not let whenQuiet pass before the local write
    // is in. Until the seed is in, no write of this incarnation is durable on the replicas.
    const parts = 1 + (this.replicas.length > 0 ? 1 : 0) + (this.seeding ? 1 : 0);
    const part = parts === 1 ? done : joinWrites(parts, done);
    this.host.store!.writeThen(ops, this.sync, part);
    if (this.replicas.length > 0) this.host.replicator!.replicate(this.ref, this.key, ops, this.sync, this.replicas, part);
    if (this.seeding) whenSettled(this.seeding, part);
  }

  /**
   * Runs `start` with the callback of a write the cell counts in flight (for whenQuiet and
   * passivation) until it settles. A failed write (e.g. a replica that knows a newer owner) is
   * settled too, and unloads the cell (writeFailed) before `done` hears of it.
   */
  private tracked(done: WriteDone | undefined, start: (done: WriteDone) => void): void {
    this.writesInFlight++;
    start((err) => {
      this.writesInFlight--;
      if (err !== undefined) this.host.writeFailed(this, err);
      done?.(err);
      this.notifyIdle();
    });
  }

  /**
   * Appends a message. Resolves once it is durable (per the type's durability); a message id seen
   * within the dedup window resolves with the first copy's seq and is not enqueued again.
   */
  enqueue(payload: unknown, opts: LocalTellOptions & { extraOps?: Op[] }): Promise<TellAck> {
    const messageId = opts.messageId;
    // Memory actors never passivate: without an id to remember they need no clock reading.
    const now = this.stored || messageId !== undefined ? this.host.clock.now() : 0;
    if (this.stored) this.lastActive = now;
    if (messageId !== undefined) {
      const seen = this.dedup.lookup(messageId, now);
      if (seen) {
        const ack: TellAck = { seq: seen.seq, messageId, duplicate: true };
        this.host.log.debug({ actor: this.key, messageId, seq: seen.seq, handled: this.handled }, 'duplicate tell confirmed');
        if (opts.ask) this.host.answer(opts.ask, null);
        // A copy loaded from the store vouches for the first copy only once the replicas hold it too.
        const durable = seen.pending ?? this.seeding;
        return durable ? durable.then(() => ack) : Promise.resolve(ack);
      }
    }
    const seq = this.nextSeq++;
    // Every field at once, absent ones undefined (JSON leaves them out): one allocation, one shape.
    const env: Envelope = { s: seq, p: payload, i: messageId, f: opts.from, k: opts.ask };
    const ack: TellAck = { seq, messageId: messageId ?? '', duplicate: false };
    if (!this.stored) {
      if (messageId !== undefined) this.dedup.add(messageId, { seq, at: now }, now);
      this.queue.push(env);
      this.schedule();
      return Promise.resolve(ack);
    }
    const json = opts.payloadJson === undefined ? JSON.stringify(env) : envelopeJson(env, opts.payloadJson);
    const ops: Op[] = [{ type: 'put', key: keys.mail(this.prefix, seq), value: json, transient: true }];
    if (opts.extraOps) ops.push(...opts.extraOps);
    this.markOps(ops);
    let entry: DedupEntry | undefined;
    if (messageId !== undefined) {
      entry = { seq, at: now };
      ops.push({ type: 'put', key: keys.dedup(this.prefix, messageId), value: JSON.stringify({ s: seq, t: now }) });
      for (const gone of this.dedup.add(messageId, entry, now)) ops.push({ type: 'del', key: keys.dedup(this.prefix, gone) });
    }
    // The message is handled at once, before its write is durable: the turn's commit, queued here
    // first, carries its put, and the removal and the put drop out together (holdForNextWrite). The
    // ack still waits for durability, and a crash before the write loses message and effect
    // together, unacknowledged.
    this.queue.push(env);
    this.schedule();
    const acked = new Promise<TellAck>((resolve, reject) =>
      this.holdForNextWrite(ops, (err) => {
        if (err === undefined) {
          if (entry) entry.pending = undefined;
          resolve(ack);
        }
        // The turn may have run and its local write landed: callers must not take this failure for
        // a tell that never happened (see UnconfirmedMessageError).
        else reject(new UnconfirmedMessageError(this.key, err));
      }),
    );
    if (entry) entry.pending = acked;
    return acked;
  }

  private schedule(): void {
    if (this.processing || this.status !== 'active' || this.host.halted || this.head >= this.queue.length) return;
    this.processing = true;
    soon(() => void this.runTurns());
  }

  /**
   * The turn loop. Handles queued messages one at a time; consecutive turns are committed together
   * (each message's removal, the final state and every outbox item in one write), which is the same
   * as committing them one by one because nothing outside the actor sees the state in between.
   */
  private async runTurns(): Promise<void> {
    try {
      while (this.status === 'active' && !this.host.halted && this.head < this.queue.length) {
        const ops: Op[] = [];
        const ctx = this.newContext();
        let replies: Array<[string, unknown]> | undefined;
        let handledNow = 0;
        let state = this.state;
        let failure: { env: Envelope; err: unknown } | undefined;
        const limit = this.host.turnBatch;
        while (handledNow < limit && this.head < this.queue.length && this.status === 'active' && !this.host.halted) {
          const env = this.queue[this.head]!;
          ctx.begin(env, env.s);
          try {
            const result = this.type.handle(state, env.p, ctx);
            state = result instanceof Promise ? await result : result;
          } catch (err) {
            ctx.discardTurn();
            failure = { env, err };
            break;
          }
          this.head++;
          handledNow++;
          this.handled = env.s;
          if (this.attempts.size > 0) this.attempts.delete(env.s);
          if (this.stored) ops.push({ type: 'del', key: keys.mail(this.prefix, env.s) });
          if (env.k !== undefined) (replies ??= []).push([env.k, ctx.replied ? ctx.replyValue : null]);
        }
        if (handledNow > 0) {
          this.state = state;
          this.backoff.reset();
          if (ctx.recordChanges) this.applyRecords(ctx.recordChanges, ops);
          this.commit(ops, ctx.outbox || ctx.timers ? ctx : undefined, replies);
        }
        if (this.head === this.queue.length) {
          // Drained: let the handled envelopes go now. Kept until 1,024 piled up, every actor held
          // its last messages (payloads and all) long enough for GC to promote them to the old
          // generation.
          this.queue.length = 0;
          this.head = 0;
        } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        if (failure) {
          this.handlerFailed(failure.env, failure.err);
          return;
        }
        if (handledNow >= limit) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.processing = false;
      this.lastActive = this.host.clock.now();
      if (this.pendingRestart !== undefined) {
        const delay = this.pendingRestart;
        this.pendingRestart = undefined;
        this.restartAfter(delay);
      } else if (this.status === 'active') {
        this.schedule();
      }
      this.notifyIdle();
    }
  }

  /** Takes a run of turns' record changes into memory, and their writes into `ops`. */
  private applyRecords(changes: Map<string, unknown>, ops: Op[]): void {
    for (const [name, value] of changes) {
      if (value === DELETED_RECORD) {
        if (!this.records.delete(name)) continue;
        if (this.stored) ops.push({ type: 'del', key: keys.record(this.prefix, name) });
      } else {
        this.records.set(name, value);
        if (this.stored) ops.push({ type: 'put', key: keys.record(this.prefix, name), value: JSON.stringify(value) });
      }
    }
  }

  /** Writes the new state with `ops` and the turn's effects; carries the effects out once durable. */
  private commit(ops: Op[], effects: TurnContext | undefined, replies: Array<[string, unknown]> | undefined): void {
    // Frozen when there is no outbox: most turns have none, and a push into it would throw.
    const outbox = effects?.outbox ? ([] as Array<[string, OutboxItem]>) : (NO_OUTBOX as Array<[string, OutboxItem]>);
    if (effects?.outbox) {
      for (const item of effects.outbox) {
        if (item.k === 'spawn' && !this.children.includes(item.ref)) this.children.push(item.ref);
        const key = keys.outbox(this.prefix, item.id.slice(item.id.lastIndexOf('#') + 1));
        outbox.push([key, item]);
      }
    }
    const timerChanges = effects?.timers;
    if (this.stored) {
      this.committedJson = JSON.stringify(this.state);
      ops.push({ type: 'put', key: keys.state(this.prefix), value: storedStateJson(this.committedJson, this.handled, this.activations, this.children, this.parent) });
      for (const [key, item] of outbox) ops.push({ type: 'put', key, value: JSON.stringify(item) });
      if (timerChanges) {
        for (const t of timerChanges) {
          if ('cancel' in t) ops.push({ type: 'del', key: keys.timer(this.prefix, t.name) });
          else ops.push({ type: 'put', key: keys.timer(this.prefix, t.name), value: JSON.stringify(timerRecord(t)) });
        }
      }
      if (outbox.length > 0 || timerChanges) this.markOps(ops);
    } else {
      this.committedState = this.state;
    }
    const afterCommit = (): void => {
      if (replies) for (const [askId, value] of replies) this.host.answer(askId, value);
      if (timerChanges) this.applyTimers(timerChanges);
      for (const [key, item] of outbox) this.deliverCommitted(key, item);
    };
    if (!this.stored) {
      afterCommit();
      return;
    }
    this.outboxInFlight += outbox.length;
    this.write(ops, (err) => {
      if (err === undefined) {
        afterCommit();
        return;
      }
      // The turns ran but are not durable where they must be: nothing of them goes out, the asks
      // hear why, and the cell leaves memory (writeFailed) so no later turn builds on them.
      this.outboxInFlight -= outbox.length;
      const reason = new UnconfirmedMessageError(this.key, err);
      if (replies) for (const [askId] of replies) this.host.answerError(askId, reason);
      this.host.log.warn({ actor: this.key, err: errorMessage(err) }, 'commit failed');
    });
  }

  private deliverCommitted(key: string, item: OutboxItem, backoff?: Backoff): void {
    if (!this.stored) {
      void this.host.deliver(this, item).catch((err) => this.host.log.warn({ actor: this.key, item, err: errorMessage(err) }, 'outbox delivery failed'));
      return;
    }
    const done = (): void => {
      this.outboxInFlight--;
      this.write([{ type: 'del', key }]);
    };
    this.host.deliver(this, item).then(done, (err) => {
      if (this.host.stopping || this.status === 'stopping') {
        // Refused because the node (or actor) is stopping: the entry stays stored and is delivered on recovery.
        this.outboxInFlight--;
        return;
      }
      if (err instanceof CeiError && err.retryable) {
        // The target is out of reach for now (moving, fenced, its node failing over): try again.
        const retry = backoff ?? new Backoff(OUTBOX_RETRY);
        this.host.clock.setTimer(retry.next(), () => {
          this.outboxInFlight--;
          if (this.host.stopping || this.status === 'stopping') return;
          this.outboxInFlight++;
          this.deliverCommitted(key, item, retry);
        });
        return;
      }
      this.host.log.warn({ actor: this.key, item, err: errorMessage(err) }, 'outbox delivery failed; dropped');
      done();
    });
  }

  private applyTimers(changes: NonNullable<TurnContext['timers']>): void {
    for (const t of changes) {
      this.timers.get(t.name)?.handle?.cancel();
      if ('cancel' in t) this.timers.delete(t.name);
      else {
        this.timers.set(t.name, timerRecord(t));
        this.scheduleTimer(t.name);
      }
    }
  }

  private scheduleTimer(name: string): void {
    const timer = this.timers.get(name);
    if (!timer) return;
    timer.handle?.cancel();
    timer.handle = this.host.clock.setTimer(timer.at - this.host.clock.now(), () => this.fireTimer(name, timer));
  }

  /** A due timer becomes a message to self; the timer's next due time is written in the same batch. */
  private fireTimer(name: string, timer: LiveTimer): void {
    if (this.timers.get(name) !== timer || this.status === 'stopping') return;
    const extraOps: Op[] = [];
    if (timer.every !== undefined) {
      const now = this.host.clock.now();
      // Missed intervals (while the node was down) fire once, not once per interval.
      timer.at = Math.max(timer.at + timer.every, now + 1);
      if (this.stored) extraOps.push({ type: 'put', key: keys.timer(this.prefix, name), value: JSON.stringify(timerRecord(timer)) });
      this.scheduleTimer(name);
    } else {
      this.timers.delete(name);
      if (this.stored) extraOps.push({ type: 'del', key: keys.timer(this.prefix, name) });
    }
    // No message id: the message and the timer's next due time are one atomic write, so a crash
    // cannot fire the same due time twice.
    this.enqueue(timer.m, { extraOps }).catch((err) =>
      this.host.log.error({ actor: this.key, timer: name, err: errorMessage(err) }, 'timer delivery failed'),
    );
  }

  /** A handler threw on `env`: count the attempt, dead-letter it when attempts are spent, then crash. */
  private handlerFailed(env: Envelope, err: unknown): void {
    const attempts = (this.attempts.get(env.s) ?? 0) + 1;
    this.attempts.set(env.s, attempts);
    this.host.log.warn({ actor: this.key, seq: env.s, attempts, err: errorMessage(err) }, 'handler failed');
    this.state = this.restoreCommitted();
    if (attempts >= this.supervision.maxAttempts) {
      this.attempts.delete(env.s);
      this.head++;
      this.handled = env.s;
      this.deadCount++;
      const record: DeadLetterRecord = { e: env, err: errorMessage(err), n: attempts, t: this.host.clock.now() };
      if (this.stored) {
        this.commit(
          [
            { type: 'del', key: keys.mail(this.prefix, env.s) },
            { type: 'put', key: keys.dead(this.prefix, env.s), value: JSON.stringify(record) },
          ],
          undefined,
          undefined,
        );
      }
      if (env.k !== undefined) {
        this.host.answerError(env.k, new Error(`handler failed ${attempts} times (${errorMessage(err)}); message moved to dead letters`));
      }
    }
    this.host.crashed(this, err);
  }

  private restoreCommitted(): unknown {
    if (!this.stored) return this.committedState;
    return this.committedJson === undefined ? this.type.initialState(undefined) : JSON.parse(this.committedJson);
  }

  /** Restarts this incarnation after `delayMs`: back to the last committed state, onActivate again. */
  restartAfter(delayMs: number): void {
    if (this.status === 'stopping') return;
    if (this.processing) {
      this.pendingRestart = Math.max(this.pendingRestart ?? 0, delayMs);
      this.status = 'restarting';
      return;
    }
    this.status = 'restarting';
    this.restartsTotal++;
    this.restartTimer?.cancel();
    this.restartTimer = this.host.clock.setTimer(delayMs, () => {
      this.restartTimer = undefined;
      if (this.status !== 'restarting') return;
      this.state = this.restoreCommitted();
      this.status = 'active';
      void this.activate();
    });
  }

  /** Stops processing until `retryMs` passes (escalation reached the root). */
  fail(retryMs: number): void {
    this.restartTimer?.cancel();
    this.status = 'failed';
    this.restartTimer = this.host.clock.setTimer(retryMs, () => {
      this.restartTimer = undefined;
      if (this.status === 'failed') this.restartAfter(0);
    });
  }

  /** Resolves once no turn runs and every write the cell issued is durable. */
  async whenQuiet(): Promise<void> {
    if (this.held) this.write([]);
    // Woken by notifyIdle whenever a turn ends or a write (local and replicated) completes.
    while (this.processing || this.writesInFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves once the cell has no turn running. */
  whenNotProcessing(): Promise<void> {
    if (!this.processing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.processing || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Ops that end this actor: pending mail to dead letters, state, timers and indexes removed. */
  stopOps(reason: string): Op[] {
    this.status = 'stopping';
    this.restartTimer?.cancel();
    for (const t of this.timers.values()) t.handle?.cancel();
    const ops: Op[] = [];
    const now = this.host.clock.now();
    for (let i = this.head; i < this.queue.length; i++) {
      const env = this.queue[i]!;
      if (env.k !== undefined) this.host.answerError(env.k, new Error(`actor ${this.key} stopped`));
      this.deadCount++;
      if (this.stored) {
        ops.push({ type: 'del', key: keys.mail(this.prefix, env.s) });
        ops.push({ type: 'put', key: keys.dead(this.prefix, env.s), value: JSON.stringify({ e: env, err: reason, n: 0, t: now }) });
      }
    }
    this.head = this.queue.length;
    if (!this.stored) return NO_OPS;
    for (const name of this.timers.keys()) ops.push({ type: 'del', key: keys.timer(this.prefix, name) });
    this.timers.clear();
    for (const name of this.records.keys()) ops.push({ type: 'del', key: keys.record(this.prefix, name) });
    this.records.clear();
    const tombstone: StoredState = { v: null, h: Math.max(this.handled, this.nextSeq - 1), a: this.activations, x: true };
    ops.push(
      { type: 'put', key: keys.state(this.prefix), value: JSON.stringify(tombstone) },
      { type: 'del', key: keys.registry(this.ref) },
      { type: 'del', key: keys.awake(this.ref) },
    );
    return ops;
  }

  /**
   * Clears the awake mark of an idle actor (nothing queued, written, delivered or timed), on its
   * replicas too: it has nothing to recover. Without this, every actor that ever got mail stayed
   * awake until passivated, and each fail-over or join loaded all of them on their new owners. The
   * next message marks it again. Called by the runtime for actors idle a while, not per turn, so a
   * busy actor pays nothing.
   */
  markQuiet(): void {
    if (!this.stored || !this.awakeWritten || !this.isIdle) return;
    this.awakeWritten = false;
    this.write([{ type: 'del', key: keys.awake(this.ref) }]);
  }

  /** Ops that mark a passivated actor as having nothing to recover. */
  passivateOps(): Op[] {
    if (!this.stored || !this.awakeWritten) return NO_OPS;
    this.awakeWritten = false;
    return [{ type: 'del', key: keys.awake(this.ref) }];
  }

  /** Dead letters moved back into the mailbox under new seqs. */
  async redrive(seqs: number[] | undefined): Promise<number> {
    if (!this.stored) return 0;
    const store = this.host.store!;
    const entries = await store.scan(keys.kindPrefix(this.prefix, 'x'));
    let count = 0;
    const acks: Array<Promise<TellAck>> = [];
    for (const [key, value] of entries) {
      const rec = parseStored<DeadLetterRecord>(key, value);
      if (seqs && !seqs.includes(rec.e.s)) continue;
      count++;
      this.deadCount--;
      const opts: { from?: string; extraOps: Op[] } = { extraOps: [{ type: 'del', key }] };
      if (rec.e.f !== undefined) opts.from = rec.e.f;
      acks.push(this.enqueue(rec.e.p, opts));
    }
    await Promise.all(acks);
    if (this.status === 'failed') this.restartAfter(0);
    return count;
  }
}

function timerRecord(t: { at: number; every?: number; m: unknown }): StoredTimer {
  return t.every === undefined ? { at: t.at, m: t.m } : { at: t.at, every: t.every, m: t.m };
}

/**
 * JSON.stringify of the StoredState {v, h, a, c?, p?}, to the character, around the state's JSON
 * already made: the state is the large part, and stringifying it a second time was a tenth of a
 * large actor's turn.
 */
export function storedStateJson(stateJson: string | undefined, handled: number, activations: number, children: readonly string[], parent: string | undefined): string {
  let out = stateJson === undefined ? '{' : `{"v":${stateJson},`;
  out += `"h":${JSON.stringify(handled)},"a":${JSON.stringify(activations)}`;
  if (children.length > 0) out += `,"c":${JSON.stringify(children)}`;
  if (parent !== undefined) out += `,"p":${JSON.stringify(parent)}`;
  return `${out}}`;
}
