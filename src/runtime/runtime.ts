import { randomBytes } from 'node:crypto';
import { DEFAULT_SUPERVISION, type ActorType, type SupervisionOptions } from './actor-type.js';
import { ActorCell, type CellHost } from './cell.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { DedupWindow } from './dedup-window.js';
import type { OutboxItem, TellAck, DeadLetterRecord } from './envelope.js';
import { silentLogger, type Logger } from './logger.js';
import { parseRefKey, refKey, validateRef, type ActorRef } from './ref.js';
import { keys, parseStored, refFromIndexKey, type Op, type Store } from './store.js';
import { LOCAL_PLACEMENT, type Placement, type Replicator } from './placement.js';
import type { ActorService, TellOptions } from './actor-service.js';
import { RestartIntensity, restartSet } from './supervisor.js';
import { inParallel } from './in-parallel.js';
import {
  CeiError,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
} from '../errors.js';

/** Actors a recovery checks for pending work per store pass (see withPendingWork). */
const PENDING_CHECK_BATCH = 256;

/** A tell as this node's runtime takes it: an ask is a tell whose answer someone awaits. */
export type LocalTellOptions = TellOptions & { ask?: string };

export interface RuntimeOptions {
  /** Message ids are remembered this long per actor... */
  dedupWindowMs: number;
  /** ...or this many per actor, whichever is less. */
  dedupMaxIds: number;
  /** An actor idle this long is unloaded from memory (0 = never); a type's idleMs overrides it. */
  idleMs: number;
  /** Supervision of top-level actors and the default for every type. */
  supervision: SupervisionOptions;
  /** An actor whose restarts exceeded the root's intensity stays failed this long, then tries again. */
  failedRetryMs: number;
  /** Turns a cell runs back to back (committed as one write) before yielding to the event loop. */
  turnBatch: number;
  /** Largest accepted message or init payload, as JSON bytes. */
  maxPayloadBytes: number;
  /** Ask timeout when the caller gives none. */
  defaultAskTimeoutMs: number;
  /** Actors reactivated at once when the node recovers. */
  recoveryConcurrency: number;
  /**
   * An actor idle this long loses its awake mark (cell.markQuiet), so that a restart, fail-over or
   * join does not load it; checked twice as often (0 = never).
   */
  quietAfterMs: number;
}

export const RUNTIME_DEFAULTS: RuntimeOptions = {
  dedupWindowMs: 24 * 60 * 60 * 1000,
  dedupMaxIds: 1_000_000,
  idleMs: 5 * 60 * 1000,
  supervision: DEFAULT_SUPERVISION,
  failedRetryMs: 60_000,
  turnBatch: 256,
  maxPayloadBytes: 1024 * 1024,
  defaultAskTimeoutMs: 30_000,
  recoveryConcurrency: 64,
  quietAfterMs: 1_000,
};

/** Short intervals for tests: quick passivation, quick failed retry, small dedup window. */
export const RUNTIME_TEST_PRESET: RuntimeOptions = {
  ...RUNTIME_DEFAULTS,
  dedupWindowMs: 60_000,
  dedupMaxIds: 10_000,
  idleMs: 1_000,
  failedRetryMs: 1_000,
  supervision: { ...DEFAULT_SUPERVISION, backoffInitialMs: 1, backoffMaxMs: 20 },
};

export type ActorStatus = 'active' | 'passivated' | 'inactive' | 'restarting' | 'failed';

export interface ActorDescription {
  ref: ActorRef;
  node: string;
  status: ActorStatus;
  mailboxDepth: number;
  restarts: number;
  deadLetters: number;
  replicas: string[];
  epoch: number;
}

export interface DeadLetter {
  seq: number;
  payload: unknown;
  messageId: string;
  error: string;
  attempts: number;
  at: number;
}

export interface RuntimeDeps {
  /** The node's store; without one, every actor behaves as durability "memory". */
  store?: Store;
  /** Which actors this node may host (the cluster's); every actor by default. */
  placement?: Placement;
  /** Copies each actor's writes to its replicas (the cluster's); none by default. */
  replicator?: Replicator;
  /** Where outbox items and actors' asks go (the cluster's router); this system by default. */
  postman?: ActorService;
  nodeId?: string;
  clock?: Clock;
  logger?: Logger;
  types?: ActorType<any>[];
}

interface AskWaiter {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: TimerHandle;
}

/**
 * The actor system of one node. It knows nothing of other nodes: every ref it is given lives here.
 *
 * Calls are safe to make concurrently; an actor still handles one message at a time. Messages from
 * one caller to one actor are enqueued in call order.
 */
export class ActorSystem implements CellHost, ActorService {
  readonly store: Store | undefined;
  readonly placement: Placement;
  readonly replicator: Replicator | undefined;
  private postman: ActorService;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly options: RuntimeOptions;
  readonly turnBatch: number;
  private readonly types = new Map<string, ActorType>();
  private readonly cells = new Map<string, ActorCell>();
  private readonly stoppingActors = new Map<string, Promise<void>>();
  private readonly asks = new Map<string, AskWaiter>();
  private readonly askPrefix = randomBytes(4).toString('hex');
  private askCounter = 0;
  private sweepTimer: TimerHandle | undefined;
  private quietTimer: TimerHandle | undefined;
  private closing = false;
  private fenced = false;

  /** Set on shutdown and while fenced: cells finish the turn in progress and take no other. */
  get halted(): boolean {
    return this.closing || this.fenced;
  }

  get stopping(): boolean {
    return this.closing;
  }

  constructor(deps: RuntimeDeps = {}, options: Partial<RuntimeOptions> = {}) {
    this.store = deps.store;
    this.placement = deps.placement ?? LOCAL_PLACEMENT;
    this.replicator = deps.replicator;
    this.postman = deps.postman ?? this;
    this.nodeId = deps.nodeId ?? deps.store?.nodeId ?? 'local';
    this.clock = deps.clock ?? systemClock;
    this.log = deps.logger ?? silentLogger;
    this.options = { ...RUNTIME_DEFAULTS, ...options };
    this.turnBatch = this.options.turnBatch;
    for (const type of deps.types ?? []) this.registerType(type);
    this.scheduleSweep();
    this.scheduleQuietSweep();
  }

  /** Routes outbox items and actors' asks through `postman` (the cluster's router) from now on. */
  setPostman(postman: ActorService): void {
    this.postman = postman;
  }

  /**
   * Fenced: this node cannot reach a majority of the voters, so it must not handle any actor's
   * messages (another node may be taking them over). Calls fail with UNAVAILABLE until unfenced.
   */
  setFenced(fenced: boolean): void {
    if (this.fenced === fenced) return;
    this.fenced = fenced;
    if (!fenced) for (const cell of this.cells.values()) cell.kick();
  }

  get isFenced(): boolean {
    return this.fenced;
  }

  registerType(type: ActorType<any>): void {
    validateRef({ type: type.name, id: 'x' }, 'actor type');
    if (this.types.has(type.name)) throw new InvalidArgumentError(`actor type "${type.name}" is registered twice`);
    this.types.set(type.name, type as ActorType);
  }

  typeNames(): string[] {
    return [...this.types.keys()].sort();
  }

  private typeOf(ref: ActorRef): ActorType {
    const type = this.types.get(ref.type);
    if (!type) throw new NotFoundError(`unknown actor type "${ref.type}" (known: ${this.typeNames().join(', ') || 'none'})`);
    return type;
  }

  private supervisionOf(type: ActorType): SupervisionOptions {
    return type.supervision ? { ...this.options.supervision, ...type.supervision } : this.options.supervision;
  }

  dedupWindow(): DedupWindow {
    return new DedupWindow(this.options.dedupWindowMs, this.options.dedupMaxIds);
  }

  /** Reactivates every actor that had mail, timers or outbox when the node last stopped. */
  async recover(concurrency = this.options.recoveryConcurrency): Promise<number> {
    if (!this.store) return 0;
    const awake = (await this.store.scanKeys(keys.awakePrefix)).map(refFromIndexKey);
    const pending = await this.withPendingWork(awake.filter((ref) => this.placement.owns(ref) && !this.cells.has(refKey(ref))));
    const outcomes = await inParallel(pending, concurrency, async (ref): Promise<number> => {
      // Shutting down: the store closes under loads started now (what is left is recovered next start).
      if (this.closing || !this.placement.owns(ref) || this.cells.has(refKey(ref))) return 0;
      if (!this.types.has(ref.type)) {
        this.log.warn({ actor: refKey(ref) }, 'actor of an unknown type has pending work; not recovered (load its module with --actors)');
        return 0;
      }
      try {
        const cell = await this.ready(ref);
        // Each load seeds the actor's replicas with its whole copy. Without waiting for that, a
        // recovery of hundreds of actors queues all their seeds on the links at once, and every
        // write of a called actor (an ask's turn) waits behind them for seconds: `concurrency`
        // bounds the seeds in flight too.
        await cell.seedSettled();
        return 1;
      } catch (err) {
        // Not ours yet (being handed over, or the rings moved again): a later recovery takes it.
        if (!(err instanceof CeiError && err.retryable) && !this.closing) this.log.error({ actor: refKey(ref), err: errorMessage(err) }, 'recovery of actor failed');
        return 0;
      }
    });
    return outcomes.reduce((a, b) => a + b, 0);
  }

  /**
   * Those of `refs` whose stored copy holds mail, timers or an outbox entry, read a batch at a time
   * (store.scanMany). An awake mark outlives the work it marks by up to quietAfterMs (cell.markQuiet):
   * after a fail-over under load most of the dead owner's actors are marked with nothing to do, and
   * loading each (and seeding its replicas with its whole copy) delays the actors callers wait for by
   * seconds. Their marks stay: deleting one here could race with a hand-off that brings it mail.
   */
  private async withPendingWork(refs: ActorRef[]): Promise<ActorRef[]> {
    const pending: ActorRef[] = [];
    const kinds = ['m', 't', 'o'];
    for (let i = 0; i < refs.length && !this.closing; i += PENDING_CHECK_BATCH) {
      const batch = refs.slice(i, i + PENDING_CHECK_BATCH);
      let found: Array<Array<[string, string]>>;
      try {
        // One entry of a kind is enough: a backlog of mail is not read here, only by the load.
        found = await this.store!.scanMany(
          batch.flatMap((ref) => kinds.map((kind) => keys.kindPrefix(keys.actor(ref), kind))),
          { limit: 1 },
        );
      } catch (err) {
        // Shutting down: the store closed under the read (what is left is recovered next start).
        if (this.closing) break;
        throw err;
      }
      for (const [j, ref] of batch.entries()) if (kinds.some((_, k) => found[j * kinds.length + k]!.length > 0)) pending.push(ref);
    }
    return pending;
  }

  private cellFor(ref: ActorRef): ActorCell | Promise<ActorCell> {
    const key = refKey(ref);
    const cell = this.cells.get(key);
    if (cell) {
      if (cell.status === 'stopping') return (this.stoppingActors.get(key) ?? Promise.resolve()).then(() => this.cellFor(ref));
      return cell;
    }
    const type = this.typeOf(ref);
    // Refs are checked once, when their cell is made: every later call finds the cell.
    validateRef(ref);
    this.placement.checkOwner(ref);
    const fresh = new ActorCell(ref, type, this.supervisionOf(type), this);
    this.cells.set(key, fresh);
    fresh.ready.catch((err) => {
      if (this.cells.get(key) === fresh) this.cells.delete(key);
      // A load the shutdown cut short (its store closed) is no failure of the actor's.
      if (this.closing) this.log.debug({ actor: key, err: errorMessage(err) }, 'activation ended by the shutdown');
      else this.log.error({ actor: key, err: errorMessage(err) }, 'activation failed');
    });
    return fresh;
  }

  /** The actor's cell once loaded (activating it when needed). */
  private async ready(ref: ActorRef): Promise<ActorCell> {
    const cell = await this.cellFor(ref);
    await cell.ready;
    return cell;
  }

  private checkOpen(): void {
    if (this.closing) throw new UnavailableError(`node ${this.nodeId} is shutting down`);
    if (this.fenced) throw new UnavailableError(`node ${this.nodeId} cannot reach a majority of the voters (fenced)`);
  }

  private checkMessage(type: ActorType, ref: ActorRef, payload: unknown): void {
    const reason = type.validate?.(payload);
    if (reason !== undefined) throw new InvalidArgumentError(`message rejected by ${ref.type}: ${reason}`);
  }

  /**
   * Appends `payload` to the actor's mailbox (activating it: actors are virtual). Resolves with the
   * message's seq once it is durable per the type's durability.
   */
  tell(ref: ActorRef, payload: unknown, opts: LocalTellOptions = NO_OPTS): Promise<TellAck> {
    try {
      this.checkOpen();
      const type = this.typeOf(ref);
      this.checkMessage(type, ref, payload);
      if (opts.messageId !== undefined) validateMessageId(opts.messageId);
      const cell = this.cellFor(ref);
      if (cell instanceof Promise) return cell.then((c) => c.whenLoaded(() => c.enqueue(payload, opts)));
      if (cell.loaded) return cell.enqueue(payload, opts);
      return cell.whenLoaded(() => cell.enqueue(payload, opts));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Sends `payload` through the actor's mailbox like a tell and resolves with the handler's reply
   * (null when it gave none), or rejects with DeadlineExceededError after `timeoutMs`.
   */
  ask<T = unknown>(ref: ActorRef, payload: unknown, timeoutMs?: number, from?: ActorRef): Promise<T> {
    const ms = timeoutMs && timeoutMs > 0 ? timeoutMs : this.options.defaultAskTimeoutMs;
    const askId = `${this.nodeId}:${this.askPrefix}:${++this.askCounter}`;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimer(ms, () => {
        this.asks.delete(askId);
        reject(new DeadlineExceededError(`ask to ${refKey(ref)} got no answer within ${ms} ms`));
      });
      this.asks.set(askId, { resolve: resolve as (v: unknown) => void, reject, timer });
      const opts: { ask: string; from?: string } = { ask: askId };
      if (from) opts.from = refKey(from);
      this.tell(ref, payload, opts).catch((err: Error) => {
        timer.cancel();
        this.asks.delete(askId);
        reject(err);
      });
    });
  }

  /** An actor's ctx.ask: through the postman, so the target may live on another node. */
  actorAsk<T>(to: ActorRef, message: unknown, timeoutMs: number | undefined, from: ActorRef): Promise<T> {
    return this.postman.ask<T>(to, message, timeoutMs, from);
  }

  /**
   * Unloads the actor without deleting anything: the turn in progress finishes, its writes become
   * durable, and the cell leaves memory. Used when ownership moves to another node (hand-off).
   */
  async release(ref: ActorRef): Promise<void> {
    const key = refKey(ref);
    const cell = this.cells.get(key);
    if (!cell) return;
    const inProgress = this.stoppingActors.get(key);
    if (inProgress) return inProgress;
    const done = (async () => {
      // A cell still loading has no write to wait for yet, and its load ends by making it active:
      // halted now, it would come alive after all, beside the next call's fresh cell, two
      // incarnations of one actor writing over each other's seqs. It is released once loaded.
      if (cell.status === 'loading') await cell.ready.catch(() => {});
      if (this.cells.get(key) !== cell) return;
      cell.status = 'stopping';
      await cell.whenQuiet();
      cell.halt();
      if (this.cells.get(key) === cell) this.cells.delete(key);
    })();
    // Calls for the actor meanwhile wait for this, then find no cell (and the new owner elsewhere).
    this.stoppingActors.set(key, done);
    try {
      await done;
    } finally {
      this.stoppingActors.delete(key);
    }
  }

  checkOwner(ref: ActorRef): void {
    this.placement.checkOwner(ref);
  }

  lostCopies(ref: ActorRef): string | undefined {
    return this.placement.lostCopies?.(ref);
  }

  writeFailed(cell: ActorCell, err: unknown): void {
    if (this.closing || cell.status === 'stopping' || this.cells.get(cell.key) !== cell) return;
    this.log.warn({ actor: cell.key, err: errorMessage(err) }, 'write failed; unloading the actor');
    void this.release(cell.ref);
  }

  /**
   * Releases every loaded actor this node no longer owns, or whose replicas are not those it loaded
   * with (its next load seeds the new ones); resolves when all are out of memory.
   */
  async releaseNotOwned(): Promise<number> {
    const moved = (c: ActorCell): boolean => !this.placement.owns(c.ref) || !sameMembers(c.replicas, this.placement.replicasOf(c.ref));
    const gone = [...this.cells.values()].filter((c) => c.status !== 'stopping' && c.status !== 'loading' && moved(c));
    // A cell still loading pins its replicas when its load ends (after checking it is the owner):
    // it is judged then, so that an actor loaded on demand under these rings is not reloaded.
    const loading = [...this.cells.values()].filter((c) => c.status === 'loading');
    const judged = loading.map(async (c) => {
      await c.ready.catch(() => {});
      if (this.cells.get(c.key) !== c || c.status === 'stopping' || !moved(c)) return 0;
      await this.release(c.ref);
      return 1;
    });
    await Promise.all(gone.map((c) => this.release(c.ref)));
    return gone.length + (await Promise.all(judged)).reduce<number>((a, b) => a + b, 0);
  }

  answer(askId: string, value: unknown): void {
    const waiter = this.asks.get(askId);
    if (!waiter) return;
    this.asks.delete(askId);
    waiter.timer.cancel();
    waiter.resolve(value);
  }

  answerError(askId: string, err: Error): void {
    const waiter = this.asks.get(askId);
    if (!waiter) return;
    this.asks.delete(askId);
    waiter.timer.cancel();
    waiter.reject(err);
  }

  /** Creates the actor with `init` unless it exists; idempotent. */
  async spawn(ref: ActorRef, init?: unknown, parent?: string): Promise<{ created: boolean; node: string }> {
    this.checkOpen();
    const type = this.typeOf(ref);
    if (init !== undefined && init !== null) {
      const reason = type.validateInit?.(init);
      if (reason !== undefined) throw new InvalidArgumentError(`init rejected by ${ref.type}: ${reason}`);
    }
    // Queued behind earlier calls without an await first (as tell does), so that a spawn and the tells
    // issued after it, such as a turn's outbox, reach the actor in that order.
    const pending = this.cellFor(ref);
    const cell = pending instanceof Promise ? await pending : pending;
    const created = await cell.whenLoaded(() => cell.initialize(init ?? undefined, parent));
    return { created, node: this.nodeId };
  }

  /**
   * Ends an actor: its children first, then its pending mail goes to its dead letters and its state
   * and timers are deleted. The next message to the same ref starts it afresh.
   */
  async stop(ref: ActorRef): Promise<void> {
    this.checkOpen();
    this.typeOf(ref);
    const key = refKey(ref);
    const inProgress = this.stoppingActors.get(key);
    if (inProgress) return inProgress;
    const cell = await this.ready(ref);
    const done = (async () => {
      cell.status = 'stopping';
      await cell.whenQuiet();
      for (const child of [...cell.children]) {
        try {
          await this.stop(parseRefKey(child));
        } catch (err) {
          this.log.warn({ actor: key, child, err: errorMessage(err) }, 'stopping child failed');
        }
      }
      const ops = cell.stopOps('actor stopped');
      if (this.store && ops.length > 0) await this.store.write(ops, true);
      if (cell.parent) this.cells.get(cell.parent)?.forgetChild(key);
      this.cells.delete(key);
    })();
    this.stoppingActors.set(key, done);
    try {
      await done;
    } finally {
      this.stoppingActors.delete(key);
    }
  }

  async describe(ref: ActorRef): Promise<ActorDescription> {
    const type = this.typeOf(ref);
    const cell = this.cells.get(refKey(ref));
    const base = { ref: { type: ref.type, id: ref.id }, node: this.nodeId, replicas: this.placement.replicasOf(ref), epoch: this.placement.epochOf(ref) };
    if (cell) {
      if (cell.status === 'loading') await cell.ready.catch(() => {});
      const status: ActorStatus = cell.status === 'restarting' || cell.status === 'failed' ? cell.status : 'active';
      return { ...base, status, mailboxDepth: cell.mailboxDepth, restarts: cell.restartsTotal, deadLetters: cell.deadCount };
    }
    if (!this.store || (type.durability ?? 'sync') === 'memory') {
      return { ...base, status: 'inactive', mailboxDepth: 0, restarts: 0, deadLetters: 0 };
    }
    const registered = (await this.store.get(keys.registry(ref))) !== undefined;
    const dead = (await this.store.scanKeys(keys.kindPrefix(keys.actor(ref), 'x'))).length;
    return { ...base, status: registered ? 'passivated' : 'inactive', mailboxDepth: 0, restarts: 0, deadLetters: dead };
  }

  /** Known actors in ref order, `pageSize` at a time; `pageToken` is the last ref key of the previous page. */
  async list(opts: { type?: string; pageSize?: number; pageToken?: string } = {}): Promise<{ actors: ActorDescription[]; nextPageToken: string }> {
    const pageSize = Math.min(Math.max(opts.pageSize || 100, 1), 1000);
    if (opts.type) this.typeOf({ type: opts.type, id: 'x' });
    let after: ActorRef | undefined;
    if (opts.pageToken) {
      try {
        after = parseRefKey(Buffer.from(opts.pageToken, 'base64url').toString('utf8'));
      } catch {
        throw new InvalidArgumentError('page_token is not one this server issued');
      }
    }
    const found = new Set<string>();
    if (this.store) {
      const prefix = keys.registryPrefix(opts.type);
      const scanned = await this.store.scanKeys(prefix, after ? { after: keys.registry(after), limit: pageSize + 1 } : { limit: pageSize + 1 });
      for (const k of scanned) {
        const r = refFromIndexKey(k);
        if (this.placement.owns(r)) found.add(refKey(r));
      }
    }
    const afterKey = after ? refKey(after) : undefined;
    for (const [key, cell] of this.cells) {
      if (cell.durability !== 'memory' || (opts.type && cell.ref.type !== opts.type)) continue;
      if (afterKey === undefined || compareRefKeys(key, afterKey) > 0) found.add(key);
    }
    const sorted = [...found].sort(compareRefKeys);
    const page = sorted.slice(0, pageSize);
    const actors = await Promise.all(page.map((k) => this.describe(parseRefKey(k))));
    const last = page[page.length - 1];
    const nextPageToken = sorted.length > pageSize && last ? Buffer.from(last).toString('base64url') : '';
    return { actors, nextPageToken };
  }

  async deadLetters(ref: ActorRef): Promise<DeadLetter[]> {
    this.typeOf(ref);
    if (!this.store) return [];
    const entries = await this.store.scan(keys.kindPrefix(keys.actor(ref), 'x'));
    return entries.map(([key, value]) => {
      const rec = parseStored<DeadLetterRecord>(key, value);
      return { seq: rec.e.s, payload: rec.e.p, messageId: rec.e.i ?? '', error: rec.err, attempts: rec.n, at: rec.t };
    });
  }

  /** Moves dead letters (all, or those with the given seqs) back into the mailbox. */
  async redrive(ref: ActorRef, seqs?: number[]): Promise<number> {
    this.checkOpen();
    this.typeOf(ref);
    const cell = await this.ready(ref);
    return cell.redrive(seqs && seqs.length > 0 ? seqs : undefined);
  }

  async deliver(from: ActorCell, item: OutboxItem): Promise<void> {
    switch (item.k) {
      case 'tell':
        await this.postman.tell(parseRefKey(item.to), item.p, { messageId: item.id, from: from.key });
        return;
      case 'spawn':
        await this.postman.spawn(parseRefKey(item.ref), item.init, from.key);
        return;
      case 'stop':
        await this.postman.stop(parseRefKey(item.ref));
        return;
    }
  }

  /**
   * A handler of `cell` threw. Its supervisor (the parent, or the root for top-level actors) restarts
   * it and, by strategy, its siblings, after a backoff; past the intensity the failure escalates to
   * the parent, and at the root the actor is marked failed.
   */
  crashed(cell: ActorCell, err: unknown): void {
    if (this.closing || cell.status === 'stopping') return;
    const now = this.clock.now();
    const parentKey = cell.parent;
    const parent = parentKey ? this.cells.get(parentKey) : undefined;
    if (parentKey && !parent) {
      // The supervisor was passivated: bring it back, then let it decide.
      cell.restartAfter(cell.supervision.backoffMaxMs);
      void this.ready(parseRefKey(parentKey)).then(
        () => this.crashed(cell, err),
        () => {},
      );
      return;
    }
    const intensity = parent ? parent.childIntensity : cell.selfIntensity;
    if (!intensity.allow(now)) {
      if (parent) {
        this.log.warn({ actor: cell.key, parent: parent.key }, 'restart intensity exceeded; escalating to parent');
        this.crashed(parent, new CeiError('INTERNAL', `child ${cell.key} exceeded its restart intensity`, { cause: err }));
      } else {
        this.log.error({ actor: cell.key, retryMs: this.options.failedRetryMs }, 'restart intensity exceeded; actor failed');
        cell.fail(this.options.failedRetryMs);
      }
      return;
    }
    const delay = cell.backoff.next();
    const strategy = parent ? parent.supervision.strategy : 'one_for_one';
    const set = parent ? restartSet(strategy, parent.children, cell.key) : [cell.key];
    for (const key of set) {
      const target = this.cells.get(key);
      if (target) this.restartTree(target, delay);
    }
  }

  private restartTree(cell: ActorCell, delay: number): void {
    cell.restartAfter(delay);
    for (const child of cell.children) {
      const c = this.cells.get(child);
      if (c) this.restartTree(c, delay);
    }
  }

  private scheduleSweep(): void {
    const every = Math.max(250, Math.min(this.options.idleMs || 60_000, 60_000) / 2);
    this.sweepTimer = this.clock.setTimer(every, () => {
      this.passivateIdle();
      if (!this.closing) this.scheduleSweep();
    });
  }

  private scheduleQuietSweep(): void {
    if (this.options.quietAfterMs <= 0) return;
    this.quietTimer = this.clock.setTimer(this.options.quietAfterMs / 2, () => {
      this.markQuiet();
      if (!this.closing) this.scheduleQuietSweep();
    });
  }

  /** Clears the awake mark of actors idle for quietAfterMs (cell.markQuiet). */
  markQuiet(): void {
    const before = this.clock.now() - this.options.quietAfterMs;
    for (const cell of this.cells.values()) if (cell.lastActive <= before) cell.markQuiet();
  }

  /** Unloads actors idle past their idle time; their next message loads them again. */
  passivateIdle(): number {
    const now = this.clock.now();
    const ops: Op[] = [];
    let unloaded = 0;
    for (const [key, cell] of this.cells) {
      if (cell.durability === 'memory' || !cell.isIdle) continue;
      const idleMs = cell.type.idleMs ?? this.options.idleMs;
      if (idleMs <= 0 || now - cell.lastActive < idleMs) continue;
      if (cell.children.some((c) => this.cells.has(c))) continue;
      ops.push(...cell.passivateOps());
      this.cells.delete(key);
      unloaded++;
    }
    if (ops.length > 0 && this.store) void this.store.write(ops, false);
    return unloaded;
  }

  /** Actors in memory now. */
  get loadedCount(): number {
    return this.cells.size;
  }

  isLoaded(ref: ActorRef): boolean {
    return this.cells.has(refKey(ref));
  }

  /** Whether `ref` is loaded here and `peer`, one of its replicas, acknowledged its seed (cell.seededTo). */
  seededTo(ref: ActorRef, peer: string): boolean {
    return this.cells.get(refKey(ref))?.seededTo(peer) ?? false;
  }

  /**
   * Stops taking work: new calls get UNAVAILABLE, each actor finishes the turn in progress, pending
   * asks fail, and everything written is flushed. The store is left open for the caller to close.
   */
  async shutdown(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.sweepTimer?.cancel();
    this.quietTimer?.cancel();
    await Promise.all([...this.cells.values()].map((c) => c.whenNotProcessing()));
    for (const cell of this.cells.values()) cell.halt();
    for (const [id, waiter] of this.asks) {
      waiter.timer.cancel();
      waiter.reject(new UnavailableError(`node ${this.nodeId} is shutting down`));
      this.asks.delete(id);
    }
    await this.store?.committer.drain();
  }
}

const NO_OPTS: LocalTellOptions = Object.freeze({});

function validateMessageId(id: unknown): void {
  if (typeof id !== 'string') throw new InvalidArgumentError('message_id must be a string');
  if (Buffer.byteLength(id) > 256) throw new InvalidArgumentError('message_id is longer than 256 bytes');
  if (id.includes('\x00')) throw new InvalidArgumentError('message_id contains a NUL character');
}

/** Orders ref keys as the store orders actors (type, then id), which is the order List pages in. */
export function compareRefKeys(a: string, b: string): number {
  const ka = keys.registry(parseRefKey(a));
  const kb = keys.registry(parseRefKey(b));
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
