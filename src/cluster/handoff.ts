/**
 * Rebalancing after the rings change: hand-off of actors whose owner moved, copies to new replicas,
 * and fail-over activation.
 *
 * On every ring change a node, one run at a time:
 *  1. releases the loaded actors it no longer owns (their turn in progress finishes, nothing new
 *     starts) and waits until all its writes are durable locally and on their replicas;
 *  2. offers every stored actor it does not own to the actor's owner (`repl.offer`) when that owner
 *     is new to it since its last completed run (or the actor was taken over here meanwhile); the
 *     receiver merges the offer into its own copy (copy-trust.ts), so the new owner ends with the
 *     freshest copy whoever held it and however rings moved meanwhile;
 *  3. then offers every actor it owns to replicas new since its last completed run (restoring R);
 *  4. drops its copies of actors it is no longer a replica of, once their owner took the offer;
 *  5. after the run, activates the actors it now owns that have pending work - after a fail-over
 *     these are the dead owner's actors, read from this node's replica copy. A lifted barrier
 *     activates them too, but not while this node's own run still offers the owners their copies
 *     (their barriers wait for it): that recovery waits for the offers, at most RECOVERY_DEFER_MS.
 * Meanwhile it asks every live peer `repl.await {sig}`: a peer answers once it finished step 2 for
 * exactly these rings, which lifts the hand-off barrier for the actors that peer owned before
 * (ring-placement.ts). Asking, rather than being told, matters when rings flap: a "done" sent for an
 * earlier, identical ring would otherwise lift a barrier too soon.
 * An actor that a call needs while the barrier is up need not wait for all that: the new owner asks
 * the awaited peers `repl.clear {sig, keys}`, and each answers, once its own run for exactly these
 * rings has released and drained (step 1), after offering those actors out of turn when step 2
 * would offer them (askClear, answerClear). Answered by every awaited peer, the actor activates.
 * After a fail-over the called actor so comes back in a round trip, not after every survivor's
 * offers of thousands of others.
 * Batches of `handoffBatch` actors per request pace the work so a join does not stall the cluster;
 * a batch's copies are read together on both sides (readAll), and the next batch is read while the
 * previous one is on the wire.
 */
import type { ActorSystem } from '../runtime/runtime.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { keys, refFromIndexKey, type Op, type Store } from '../runtime/store.js';
import { mergeCopies, type CopyTrust } from './copy-trust.js';
import { parseRefKey, refKey, type ActorRef } from '../runtime/ref.js';
import { CeiError, UnavailableError, errorMessage } from '../errors.js';

const RERUN_MS = 100;
/** A peer asked about rings it has not reached answers "not done" after this long, and is asked again. */
const AWAIT_ANSWER_MS = 2_000;
/** How many times an offer is passed on while views disagree about the owner. */
const MAX_OFFER_HOPS = 3;
const MOVED_ON = Symbol('rings moved on');
/** The longest a recovery waits for this node's offers to owners (see recoverSoon). */
const RECOVERY_DEFER_MS = 5_000;
/**
 * Loads at once in a recovery after a hand-off. Each load seeds the actor's replicas, and those
 * writes queue ahead of the writes of actors that callers are waiting for, which load on demand
 * meanwhile: a few at a time keeps the links and the replicas' commits free for them.
 */
const RECOVERY_CONCURRENCY = 8;
/** A run still going after this long is logged (and again every as long), with the step it is in. */
const STUCK_RUN_MS = 5_000;
import type { ClusterOptions } from './cluster-options.js';
import type { RingPlacement } from './ring-placement.js';
import type { ClusterReplicator } from './replication.js';
import type { Link, Transport } from './transport.js';
import type { SubHandler } from './membership-service.js';

type Entries = Array<[string, string]>;
interface ActorCopy {
  key: string;
  entries: Entries;
  /** Whether the sender trusts its copy (copy-trust.ts). */
  trusted: boolean;
}

export class HandoffCoordinator implements SubHandler {
  private running: Promise<void> | undefined;
  private again = false;
  /** The rings for which a run offered every owner its copies, and who waits to hear of the next ones. */
  private handedOverSig: string | undefined;
  private readonly awaiters: SigWaiters;
  /** The rings whose run has released and drained, and offers (or offered) the owners their copies. */
  private offeringSig: string | undefined;
  /** Per-actor barrier questions waiting for our run to get that far (see answerClear). */
  private readonly offeringWaiters: SigWaiters;
  /** Per-actor barrier questions gathered in this microtask, to go out as one request per peer. */
  private clearBatch: { sig: string; keys: string[]; done: Promise<void> } | undefined;
  /** Peers we are asking `repl.await` for the current rings. */
  private asking = new Set<string>();
  /** What the current run is doing, since when: answered with "not done" so a stuck run is visible. */
  private step = 'idle';
  private recovering: Promise<void> | undefined;
  /** Offers in flight waiting to hear that the rings moved on (see ringsMoved). */
  private readonly ringWaiters = new Set<() => void>();
  private recoverAgain = false;
  /** A run is offering the owners their copies (see recoverSoon). */
  private offeringOwners = false;
  /** recoverSoon was called while offeringOwners: a recovery follows the offers. */
  private recoverDeferred = false;
  private stepSince = 0;
  /** Runs finished, and actors moved, for tests and metrics. */
  runs = 0;
  handedOff = 0;
  copied = 0;

  constructor(
    private readonly selfId: string,
    private readonly placement: RingPlacement,
    private readonly local: ActorSystem,
    private readonly store: Store,
    private readonly replicator: ClusterReplicator,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: ClusterOptions,
    private readonly trust: CopyTrust,
  ) {
    this.awaiters = new SigWaiters(clock);
    this.offeringWaiters = new SigWaiters(clock);
    placement.onBarrier = (_ref, key) => this.askClear(key);
  }

  /** This node was declared down while alive: nothing it holds is trusted any more (copy-trust.ts). */
  declaredDown(): void {
    this.trust.clear();
  }

  /** Call on every ring change (synchronously after placement.update returned true). */
  ringChanged(): void {
    this.handedOverSig = undefined;
    const waiters = [...this.ringWaiters];
    this.ringWaiters.clear();
    for (const wake of waiters) wake();
    // Peers asking about other rings get their answer now: not done; they ask again for their new rings.
    this.awaiters.settleOthers(this.placement.signature, false);
    this.offeringWaiters.settleOthers(this.placement.signature, false);
    void this.local.releaseNotOwned();
    this.kick();
    for (const peer of this.placement.awaitingHandoffs) void this.askDone(peer);
  }

  /** Asks `peer` until it answers that it handed over for our current rings (or stops mattering). */
  private async askDone(peer: string): Promise<void> {
    if (this.asking.has(peer)) return;
    this.asking.add(peer);
    const since = this.clock.now();
    let warnAt = since + STUCK_RUN_MS;
    try {
      while (this.placement.awaitingHandoffs.includes(peer)) {
        const sig = this.placement.signature;
        const link = this.transport.link(peer);
        let answer: { done: boolean; step?: string; stepMs?: number; sigMatches?: boolean; error?: string } = { done: false, step: 'no link' };
        if (link) {
          answer = await link
            .request<typeof answer>('repl.await', { sig }, this.options.requestTimeoutMs)
            .catch((err: unknown) => ({ done: false, error: errorMessage(err) }));
        }
        const done = answer.done;
        if (!done && this.clock.now() >= warnAt) {
          warnAt = this.clock.now() + STUCK_RUN_MS;
          this.log.warn({ peer, waitedMs: this.clock.now() - since, answer }, 'hand-off barrier: peer has not handed over for our rings yet');
        }
        if (done && this.placement.handoffDone(peer, sig)) {
          this.log.debug({ peer, waitedMs: this.clock.now() - since, still: this.placement.awaitingHandoffs }, 'hand-off barrier: peer handed over');
          // Not awaited: while this loop waits, later ring changes do not ask this peer again.
          this.recoverSoon();
          return;
        }
        if (!done) await new Promise<void>((resolve) => this.clock.setTimer(50, resolve));
      }
    } finally {
      this.asking.delete(peer);
    }
  }

  /**
   * Activates the owned actors with pending work that a lifted barrier may have let in; one recovery
   * at a time, and one more after it when asked meanwhile.
   */
  private recoverSoon(): void {
    if (this.offeringOwners) {
      // Our run is still offering the owners their copies, which holds their barriers: a recovery
      // now (hundreds of loads, each seeding its replicas) would compete with it for the cores and
      // the links. It follows the offers instead, or RECOVERY_DEFER_MS from now, whichever is first.
      if (!this.recoverDeferred) {
        this.recoverDeferred = true;
        this.clock.setTimer(RECOVERY_DEFER_MS, () => this.deferredRecovery());
      }
      return;
    }
    this.startRecovery();
  }

  private startRecovery(): void {
    if (this.recovering) {
      this.recoverAgain = true;
      return;
    }
    const started = this.clock.now();
    this.recovering = this.local
      .recover(RECOVERY_CONCURRENCY)
      .then((n) => this.log.debug({ recovered: n, ms: this.clock.now() - started }, 'recovery after hand-off done'))
      .catch((err) => this.log.error({ err: errorMessage(err) }, 'recovery after hand-off failed'))
      .then(() => {
        const ms = this.clock.now() - started;
        if (ms >= STUCK_RUN_MS) this.log.warn({ ms }, 'recovery after hand-off was slow');
        this.recovering = undefined;
        if (this.recoverAgain) {
          this.recoverAgain = false;
          this.recoverSoon();
        }
      });
  }

  /** Runs the recovery recoverSoon deferred while our run offered the owners their copies. */
  private deferredRecovery(): void {
    if (!this.recoverDeferred) return;
    this.recoverDeferred = false;
    this.startRecovery();
  }

  /** Resolves true once a run offered the owners their copies for rings `sig` (false after `timeoutMs`). */
  private doneFor(sig: string, timeoutMs: number): Promise<boolean> {
    if (this.handedOverSig === sig) return Promise.resolve(true);
    return this.awaiters.wait(sig, timeoutMs);
  }

  /** Runs a pass (or queues another after the current one). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run()
      .catch((err) => {
        // A run must complete for peers' barriers to lift: try the whole run again shortly.
        this.log.warn({ err: errorMessage(err) }, 'rebalance run failed; running it again');
        return new Promise<void>((resolve) => this.clock.setTimer(RERUN_MS, resolve)).then(() => {
          this.again = true;
        });
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when no rebalance is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private enter(step: string): void {
    this.log.debug({ step, previous: this.step, ms: this.clock.now() - this.stepSince }, 'rebalance step');
    this.step = step;
    this.stepSince = this.clock.now();
  }

  private async run(): Promise<void> {
    const sig = this.placement.signature;
    const started = this.clock.now();
    // A run that does not finish holds every peer's hand-off barrier: say which step it is stuck in.
    let watchdog = this.clock.setTimer(STUCK_RUN_MS, function warn(this: HandoffCoordinator) {
      const streams = this.step === 'drain-replicas' ? this.replicator.describe() : undefined;
      this.log.warn({ step: this.step, stepMs: this.clock.now() - this.stepSince, runMs: this.clock.now() - started, streams }, 'rebalance run is taking long');
      watchdog = this.clock.setTimer(STUCK_RUN_MS, warn.bind(this));
    }.bind(this));
    this.offeringOwners = true;
    try {
      await this.runSteps(sig);
    } finally {
      watchdog.cancel();
      this.offeringSig = undefined;
      this.enter('idle');
      this.ownersOffered();
    }
  }

  private async runSteps(sig: string): Promise<void> {
    this.enter('release');
    await this.local.releaseNotOwned();
    this.enter('drain-local');
    await this.store.committer.drain();
    this.enter('drain-replicas');
    await this.replicator.drain();
    this.enter('offer-owners');
    // Released and drained: from here a per-actor barrier question for these rings can be answered.
    if (sig === this.placement.signature) {
      this.offeringSig = sig;
      this.offeringWaiters.settle(sig, true);
    }
    const { toOwners, toReplicas } = await this.plan();
    // Each offer carries the run's rings: once they moved on, the rest of this plan is stale.
    for (const [peer, refs] of toOwners) await this.offer(peer, refs, 0, sig);
    if (sig !== this.placement.signature) {
      this.again = true;
      return;
    }
    // Every owner has our copies now: that is all a peer's hand-off barrier waits for. Copies to new
    // replicas (restoring R) follow without holding it.
    this.handedOverSig = sig;
    this.placement.markOwnersDone(sig);
    this.ownersOffered();
    this.awaiters.settle(sig, true);
    this.enter('offer-replicas');
    // An actor loaded here since its replicas changed seeded them with its whole copy (a recovery
    // loads hundreds right now): offering it again would only queue their writes behind the merge.
    for (const [peer, refs] of toReplicas) await this.offer(peer, refs, 0, sig, (ref) => this.local.seededTo(ref, peer));
    if (sig !== this.placement.signature) {
      this.again = true;
      return;
    }
    this.placement.markOutgoingDone(sig);
    this.runs++;
    // After a fail-over these are the dead owner's actors. Not part of the run: peers wait for the
    // run, and activating actors (which may wait on barriers of their own) must not hold them.
    this.recoverSoon();
  }

  /** The run's offers to owners are over (done or given up): a recovery deferred meanwhile goes now. */
  private ownersOffered(): void {
    this.offeringOwners = false;
    this.deferredRecovery();
  }

  /** Which stored actors go to which peer: to their owners, and to replicas new to them. */
  private async plan(): Promise<{ toOwners: Map<string, ActorRef[]>; toReplicas: Map<string, ActorRef[]> }> {
    const registry = await this.store.scanKeys(keys.registryPrefix());
    const toOwners = new Map<string, ActorRef[]>();
    const toReplicas = new Map<string, ActorRef[]>();
    const add = (to: Map<string, ActorRef[]>, peer: string, ref: ActorRef): void => {
      const list = to.get(peer);
      if (list) list.push(ref);
      else to.set(peer, [ref]);
    };
    for (const k of registry) {
      const ref = refFromIndexKey(k);
      const now = this.placement.preferenceList(ref);
      const owner = now[0];
      if (!owner) continue;
      if (owner !== this.selfId) {
        if (this.offersToOwner(ref, now)) add(toOwners, owner, ref);
      } else {
        const before = this.placement.settledPreferenceList(ref);
        for (const replica of now.slice(1)) if (!before.includes(replica)) add(toReplicas, replica, ref);
      }
    }
    return { toOwners, toReplicas };
  }

  /**
   * Whether our run offers our copy of `ref`, owned by another node under `now`, to that owner. An
   * owner that owned the actor when our last run offered the owners their copies has what we hold:
   * its writes are what we hold. A new owner (fail-over, join, leave) needs our copy, as does the
   * owner of an actor we took over meanwhile, and any copy we should no longer keep.
   */
  private offersToOwner(ref: ActorRef, now: string[] = this.placement.preferenceList(ref)): boolean {
    return this.placement.settledOwnerOf(ref) !== now[0] || !now.includes(this.selfId) || this.placement.activatedLately(refKey(ref));
  }

  // --- the per-actor barrier ----------------------------------------------------------------------

  /**
   * Asks every peer still awaited for the current rings to clear `key` (`repl.clear`), so that an
   * actor someone calls can activate before the peers' whole hand-off is over: after a fail-over the
   * new owner otherwise waits for every copy the survivors offer, seconds on a busy pair of cores,
   * when the called actor needs one. Keys asked in one microtask go out as one request per peer.
   */
  private askClear(key: string): Promise<void> {
    const sig = this.placement.signature;
    if (this.clearBatch?.sig === sig) {
      this.clearBatch.keys.push(key);
      return this.clearBatch.done;
    }
    const batch = { sig, keys: [key], done: Promise.resolve() };
    this.clearBatch = batch;
    batch.done = Promise.resolve().then(async () => {
      if (this.clearBatch === batch) this.clearBatch = undefined;
      await Promise.all(
        this.placement.awaitingHandoffs.map(async (peer) => {
          const link = this.transport.link(peer);
          if (!link) return;
          const askedAt = this.clock.now();
          const answer = await link
            .request<{ cleared: string[] }>('repl.clear', { from: this.selfId, sig, keys: batch.keys }, this.options.requestTimeoutMs)
            .catch(() => undefined);
          this.log.debug({ peer, keys: batch.keys.length, first: batch.keys[0], cleared: answer?.cleared.length, ms: this.clock.now() - askedAt }, 'hand-off barrier: clearance answered');
          for (const key of answer?.cleared ?? []) this.placement.cleared(peer, sig, key);
        }),
      );
    });
    return batch.done;
  }

  /**
   * Answers `repl.clear`: `from`, the owner of `keyList` under rings `sig`, asks whether they may
   * activate there before our hand-off for those rings is over. Once our run for them has released
   * our actors and drained our writes (it reached its offers to owners), we offer `from` at once the
   * copies among these that the run would offer it, and answer with every key: what we hold of them
   * changes after that only through `from`'s own writes, and what the run offers again merges into
   * nothing new (or is refused, once the actor runs there). Nothing is cleared for other rings.
   */
  private async answerClear(from: string, sig: string, keyList: string[]): Promise<{ cleared: string[] }> {
    const askedAt = this.clock.now();
    if (!(await this.offeringOwnersFor(sig, Math.min(AWAIT_ANSWER_MS, this.options.requestTimeoutMs / 2)))) return { cleared: [] };
    if (this.handedOverSig === sig) return { cleared: keyList };
    const waitedMs = this.clock.now() - askedAt;
    const refs = keyList.map(parseRefKey).filter((ref) => this.placement.ownerOf(ref) === from);
    const held = await this.store.getMany(refs.map((ref) => keys.registry(ref)));
    const offers = refs.filter((ref, i) => held[i] !== undefined && this.offersToOwner(ref));
    if (offers.length > 0) await this.offer(from, offers, 0, sig);
    this.log.debug({ from, keys: keyList.length, first: keyList[0], offered: offers.length, waitedMs, ms: this.clock.now() - askedAt }, 'hand-off barrier: clearance given');
    return sig === this.placement.signature ? { cleared: refs.map(refKey) } : { cleared: [] };
  }

  /** Resolves true once our run for rings `sig` reached its offers to owners (false if the rings move on, or after `timeoutMs`). */
  private offeringOwnersFor(sig: string, timeoutMs: number): Promise<boolean> {
    if (sig !== this.placement.signature) return Promise.resolve(false);
    if (this.offeringSig === sig || this.handedOverSig === sig) return Promise.resolve(true);
    return this.offeringWaiters.wait(sig, timeoutMs);
  }

  /**
   * Offers `refs` to `peer` in batches, then drops our copies of those we no longer replicate.
   * `skip` leaves out, batch by batch just before it is read, actors that need no offer by then.
   */
  private async offer(peer: string, refs: ActorRef[], hops = 0, sig = this.placement.signature, skip?: (ref: ActorRef) => boolean): Promise<void> {
    const batch = this.options.handoffBatch;
    const take = (from: number): ActorRef[] => {
      const slice = refs.slice(from, from + batch);
      return skip ? slice.filter((ref) => !skip(ref)) : slice;
    };
    // The next batch is read while this one is on the wire: the reads, not the requests, are most of
    // an offer's cost. Each batch holds other actors, and every copy is read after the run's drains,
    // as before; a copy read a round trip earlier is no staler than the first of a batch read in turn.
    const read = (slice: ActorRef[]): Promise<ActorCopy[]> => (slice.length > 0 ? this.readCopies(slice) : Promise.resolve([]));
    // A run's offers stop as soon as the rings move on (hops 0), also while a batch is being read:
    // a run for the new ones follows and offers to the owners they name. A busy node reads a batch
    // in hundreds of ms, and until that run starts, no barrier of the new rings is answered here
    // (answerClear), which is what a fail-over waits for.
    if (hops === 0 && sig !== this.placement.signature) return;
    let slice = take(0);
    let reading: Promise<ActorCopy[]> | undefined = read(slice);
    for (let i = 0; i < refs.length; i += batch) {
      const actors = hops === 0 ? await this.unlessRingsMove(reading!, sig) : await reading!;
      const current = slice;
      reading = undefined;
      if (actors === MOVED_ON) return;
      if (i + batch < refs.length) {
        slice = take(i + batch);
        reading = read(slice);
        reading.catch(() => {});
      }
      if (actors.length === 0) continue;
      const sent = this.request(peer, 'repl.offer', { from: this.selfId, epoch: this.placement.epoch, actors, hops });
      // A run for rings that moved on stops waiting at once (the next run must not queue behind an
      // answer that no longer matters); our copies stay until a later offer is answered.
      const answer = hops === 0 ? await this.unlessRingsMove(sent, sig) : await sent;
      if (answer === MOVED_ON) return;
      if (!answer) {
        this.log.warn({ peer, actors: refs.length - i }, 'repl.offer: peer left before it got them');
        return;
      }
      const refused = new Set(answer.refused);
      const dropped: ActorRef[] = [];
      for (const ref of current) {
        const key = refKey(ref);
        if (refused.has(key)) continue;
        if (this.placement.ownerOf(ref) === peer) this.handedOff++;
        else this.copied++;
        if (!this.placement.preferenceList(ref).includes(this.selfId)) {
          dropped.push(ref);
          this.trust.delete(key);
        }
      }
      if (dropped.length > 0) await this.store.write(await this.deleteOps(dropped), false);
    }
  }

  /** `work`'s result, or MOVED_ON as soon as the rings are no longer `sig` (`work` goes on, unheard). */
  private async unlessRingsMove<T>(work: Promise<T>, sig: string): Promise<T | typeof MOVED_ON> {
    const moved = this.ringsMoved(sig);
    try {
      return await Promise.race([work, moved.promise]);
    } finally {
      moved.cancel();
      work.catch(() => {});
    }
  }

  /** Resolves MOVED_ON once the rings are no longer those named by `sig`; cancel() stops listening. */
  private ringsMoved(sig: string): { promise: Promise<typeof MOVED_ON>; cancel: () => void } {
    if (sig !== this.placement.signature) return { promise: Promise.resolve(MOVED_ON), cancel: () => {} };
    let wake!: () => void;
    const promise = new Promise<typeof MOVED_ON>((resolve) => {
      wake = () => resolve(MOVED_ON);
      this.ringWaiters.add(wake);
    });
    return { promise, cancel: () => this.ringWaiters.delete(wake) };
  }

  /**
   * Sends a request to `peer`, again on a new link when the link drops or is replaced, while the peer
   * is live; undefined when it is not live any more.
   */
  private async request(peer: string, method: string, body: unknown): Promise<{ refused: string[] } | undefined> {
    for (;;) {
      const link = await this.linkTo(peer);
      if (!link) return undefined;
      try {
        return await link.request<{ refused: string[] }>(method, body, this.options.requestTimeoutMs);
      } catch (err) {
        if (!(err instanceof CeiError && err.retryable) || !this.placement.isLive(peer)) throw err;
        await new Promise<void>((resolve) => this.clock.setTimer(RERUN_MS / 4, resolve));
      }
    }
  }

  /** Waits (bounded) for a link to `peer` while it is live. */
  private async linkTo(peer: string): Promise<Link | undefined> {
    const deadline = this.clock.now() + this.options.requestTimeoutMs;
    for (;;) {
      const link = this.transport.link(peer);
      if (link) return link;
      if (!this.placement.isLive(peer) || this.clock.now() > deadline) return undefined;
      await new Promise<void>((resolve) => this.clock.setTimer(25, resolve));
    }
  }

  /** Our copies of `refs`, read a few actors at a time (see readAll). */
  private async readCopies(refs: ActorRef[]): Promise<ActorCopy[]> {
    const entries = await this.readAll(refs);
    // Trust is taken when the copy is read, as the copy itself is.
    return refs.map((ref, i) => {
      const key = refKey(ref);
      return { key, entries: entries[i]!, trusted: this.trust.has(key) };
    });
  }

  /**
   * Each of `refs`' copy: its registry and awake keys in one read for the batch, and its own keys
   * through one iterator for the batch (store.scanMany). LevelDB reads wait on the thread pool: an
   * iterator opened and closed per actor was three trips through it, most of a hand-off's time.
   */
  private async readAll(refs: ActorRef[]): Promise<Entries[]> {
    const [side, out] = await Promise.all([
      this.store.getMany(refs.flatMap((ref) => [keys.registry(ref), keys.awake(ref)])),
      this.store.scanMany(refs.map((ref) => keys.actor(ref))),
    ]);
    for (const [i, ref] of refs.entries()) {
      const [registry, awake] = [side[2 * i], side[2 * i + 1]];
      if (registry !== undefined) out[i]!.push([keys.registry(ref), registry]);
      if (awake !== undefined) out[i]!.push([keys.awake(ref), awake]);
    }
    return out;
  }

  /** Deletes of every key of `refs`' copies, read now (not the copies offered: a write may have landed since). */
  private async deleteOps(refs: ActorRef[]): Promise<Op[]> {
    const own = await this.store.scanMany(refs.map((ref) => keys.actor(ref)));
    return refs.flatMap((ref, i) => [...own[i]!.map(([key]) => key), keys.registry(ref), keys.awake(ref)].map((key) => ({ type: 'del' as const, key })));
  }

  // --- the receiving side -------------------------------------------------------------------------

  onMessage(): void {}

  async onRequest(_link: Link, method: string, body: unknown): Promise<unknown> {
    const b = body as { from: string; sig?: string; actors?: ActorCopy[]; hops?: number; keys?: unknown };
    switch (method) {
      case 'repl.clear':
        return this.answerClear(b.from, b.sig ?? '', Array.isArray(b.keys) ? b.keys.filter((k): k is string => typeof k === 'string') : []);
      case 'repl.await': {
        const done = await this.doneFor(b.sig ?? '', Math.min(AWAIT_ANSWER_MS, this.options.requestTimeoutMs / 2));
        return done ? { done } : { done, step: this.step, stepMs: this.clock.now() - this.stepSince, sigMatches: b.sig === this.placement.signature };
      }
      case 'repl.offer':
        return this.receive(b.actors ?? [], typeof b.hops === 'number' ? b.hops : 0, b.from);
      default:
        throw new UnavailableError(`unknown method ${method}`);
    }
  }

  /**
   * Merges offered copies into ours (copy-trust.ts). An actor loaded here is refused: it runs here,
   * so this node is its owner and its copy is the one that counts.
   */
  private async receive(actors: ActorCopy[], hops: number, from: string): Promise<{ refused: string[] }> {
    // Read, merge and write as one step among all writes on behalf of peers, on what is on disk.
    const { refused, written } = await this.replicator.exclusive(
      actors.map((a) => a.key),
      async () => {
        await this.store.committer.drain();
        const refused: string[] = [];
        const ops: Op[] = [];
        const refs = actors.map((a) => parseRefKey(a.key));
        const loaded = refs.map((ref) => this.local.isLoaded(ref));
        // Our copies, read together; an actor loaded here is not read (it is refused below).
        const copies = await this.readAll(refs.filter((_, i) => !loaded[i]));
        let c = 0;
        for (const [i, actor] of actors.entries()) {
          const ref = refs[i]!;
          if (loaded[i] || this.local.isLoaded(ref)) {
            if (!loaded[i]) c++;
            this.log.debug({ actor: actor.key, from, hops }, 'offer refused: the actor runs here');
            refused.push(actor.key);
            continue;
          }
          const prefix = keys.actor(ref);
          const existing = copies[c++]!;
          const localTrusted = this.trust.has(actor.key);
          const merged = mergeCopies(prefix, { entries: existing, trusted: localTrusted }, { entries: actor.entries, trusted: actor.trusted });
          this.log.debug(
            { actor: actor.key, from, hops, handled: merged.handled, trusted: [localTrusted, actor.trusted], won: merged.incomingWon ? 'incoming' : 'local' },
            'offer merged',
          );
          const had = new Map(existing);
          for (const [key] of existing) if (!merged.entries.has(key)) ops.push({ type: 'del', key });
          for (const [key, value] of merged.entries) if (had.get(key) !== value) ops.push({ type: 'put', key, value });
          if (merged.trusted) this.trust.add(actor.key);
        }
        return { refused, written: ops.length > 0 ? this.store.write(ops, true) : Promise.resolve() };
      },
    );
    await written;
    // An offer that reaches us after we are no longer the actor's owner (it was sent for rings older
    // than ours) goes on to the owner before we answer: the sender's run completes only after this,
    // so a new owner's barrier never lifts while a copy is still on its way to it.
    if (hops < MAX_OFFER_HOPS) {
      const onward = new Map<string, ActorRef[]>();
      for (const actor of actors) {
        const ref = parseRefKey(actor.key);
        const owner = this.placement.ownerOf(ref);
        // Not back to the sender when it is the owner: it holds what it sent, and whatever fresher our
        // copy held goes to it in our own run's offers to owners, which its barrier waits for.
        if (!owner || owner === this.selfId || owner === from || refused.includes(actor.key)) continue;
        const list = onward.get(owner);
        if (list) list.push(ref);
        else onward.set(owner, [ref]);
      }
      for (const [peer, refs] of onward) await this.offer(peer, refs, hops + 1);
    }
    return { refused };
  }

}

/** Peers' questions about one set of rings (its signature), each answered once: now, on a ring change, or after its timeout. */
class SigWaiters {
  private waiters: Array<{ sig: string; resolve: (answer: boolean) => void }> = [];

  constructor(private readonly clock: Clock) {}

  /** Resolves with what `settle` says for `sig`, or false after `timeoutMs`. */
  wait(sig: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const entry = { sig, resolve };
      this.waiters.push(entry);
      this.clock.setTimer(timeoutMs, () => {
        const i = this.waiters.indexOf(entry);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          resolve(false);
        }
      });
    });
  }

  /** Answers every question about `sig`. */
  settle(sig: string, answer: boolean): void {
    this.settleWhere((w) => w === sig, answer);
  }

  /** Answers every question about rings other than `sig`. */
  settleOthers(sig: string, answer: boolean): void {
    this.settleWhere((w) => w !== sig, answer);
  }

  private settleWhere(match: (sig: string) => boolean, answer: boolean): void {
    const settled = this.waiters.filter((w) => match(w.sig));
    if (settled.length === 0) return;
    this.waiters = this.waiters.filter((w) => !match(w.sig));
    for (const w of settled) w.resolve(answer);
  }
}
