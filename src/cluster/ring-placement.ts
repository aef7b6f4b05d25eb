/**
 * Placement over consistent-hash rings (hash-ring.ts), one per eligibility class:
 *   control   actor types of the control plane: bootstrap and control members
 *   any       every member (generic and process types, e.g. counter)
 *   pinned    node-pinned types (e.g. ee-agent/<node-id>): the node named by the id
 * A ring holds the members that are `up` or `suspect` (a suspect keeps its actors until a majority
 * declares it down, which avoids moving actors on a hiccup). An actor's preference list is the first
 * `replicas` distinct members clockwise from its key: the owner, then its replicas. When an owner is
 * removed, its first replica becomes the owner, which already holds a copy: that is fail-over.
 *
 * Two settled states make hand-off safe when rings change several times in a row:
 *  - outgoing: the rings of this node's last completed rebalance run. What it owned then and does not
 *    own now is what it must hand over, however many ring changes happened in between.
 *  - incoming: the rings at which every live peer last confirmed its hand-off to us. After a ring
 *    change, an actor this node did not own at those rings is not activated (UNAVAILABLE, retried by
 *    the caller) until every live peer confirmed its run for the current rings (handoffDone), since
 *    any of them may hold the actor's latest copy.
 */
import type { ActorRef } from '../runtime/ref.js';
import { refKey } from '../runtime/ref.js';
import type { Placement } from '../runtime/placement.js';
import { UnavailableError } from '../errors.js';
import { HashRing } from './hash-ring.js';
import type { CopyTrust } from './copy-trust.js';
import type { MembershipView } from './membership.js';

export type PlacementClass = 'any' | 'control' | 'pinned';

const RING_STATUSES = new Set(['up', 'suspect']);
const NONE: readonly string[] = Object.freeze([]);
const LIVE_STATUSES = new Set(['joining', 'up', 'suspect', 'leaving']);
/** How long a refused owner keeps away from an actor before it tries again (see `disowned`). */
const DISOWN_MS = 500;

interface Rings {
  any: HashRing;
  control: HashRing;
}

/**
 * More than R-1 nodes went down before their actors were copied elsewhere: under `rings` (the last
 * settled ones), an actor whose every holder is in `dead` has no copy on any live node.
 */
interface LossRecord {
  rings: Rings;
  dead: Set<string>;
  at: number;
}

/** A loss record as stored in the node's data directory (the rings by their members). */
export interface StoredLoss {
  any: string[];
  control: string[];
  dead: string[];
  at: number;
}

function ringsOf(view: MembershipView): Rings {
  const members = view.list().filter((m) => RING_STATUSES.has(m.status));
  return {
    any: HashRing.of(members.map((m) => m.id)),
    control: HashRing.of(members.filter((m) => m.role !== 'worker').map((m) => m.id)),
  };
}

function signature(rings: Rings): string {
  return `${rings.any.nodes.join(',')}|${rings.control.nodes.join(',')}`;
}

/**
 * Actors whose per-actor barrier question may be in flight at once: past it, actors wait for the
 * peers' whole hand-off as before (a fail-over under load touches many actors, and each question
 * makes the peers offer that actor out of turn).
 */
const MAX_CLEARING = 256;

export class RingPlacement implements Placement {
  private view: MembershipView | undefined;
  private rings: Rings = { any: HashRing.of([]), control: HashRing.of([]) };
  private outSettled: Rings = this.rings;
  /**
   * The rings of this node's last run that offered every owner its copies (a run's first half):
   * an owner that owned an actor then has what we hold of it, even if the run's copies to new
   * replicas never finished because the rings moved again.
   */
  private ownersSettled: Rings = this.rings;
  private inSettled: Rings = this.rings;
  private sig = signature(this.rings);
  /** Live peers that have not yet confirmed their hand-off for the current rings. */
  private awaiting = new Set<string>();
  /** The view version at which the rings last changed: the ownership epoch. */
  epoch = 0;
  private replicaCache = new Map<string, string[]>();
  /**
   * Actors a replica refused our writes for (it knows another owner), with when the mark expires: we
   * neither activate nor keep them meanwhile. The mark ends at our next ring change or after
   * DISOWN_MS, whichever comes first - view versions are per node, so "until our view is as new as
   * the replica's" cannot be told; if views still disagree after it, the next refusal marks it again.
   */
  private disowned = new Map<string, number>();
  /**
   * Actors activated here as owner since the last completed rebalance run: a node that took an actor
   * over while its run for those rings had not completed must still hand it back, even when the
   * owner at its settled rings is the owner again (see HandoffCoordinator.transfer).
   */
  private activatedSinceSettled = new Set<string>();
  /** Copies lost with nodes that are still down (see lostCopies). */
  private losses: LossRecord[] = [];
  /**
   * Per-actor barrier, for the current rings: the awaited peers that answered that they hold nothing
   * fresher of an actor for us (or gave it to us), so it may activate before their whole hand-off
   * is over. Cleared on every ring change (answers are for one set of rings).
   */
  private clearedBy = new Map<string, Set<string>>();
  /** Per-actor barrier questions in flight, by actor key: what a retrying call may wait for. */
  private clearing = new Map<string, Promise<void>>();
  /**
   * Asks the awaited peers to clear one actor (HandoffCoordinator.askClear); called by checkOwner when
   * an actor waits on the barrier. Resolves when every peer answered, cleared or not.
   */
  onBarrier: ((ref: ActorRef, key: string) => Promise<void>) | undefined;

  constructor(
    readonly selfId: string,
    readonly replicas: number,
    private readonly classOf: (type: string) => PlacementClass,
    private readonly trust?: CopyTrust,
    private readonly now: () => number = Date.now,
  ) {}

  get signature(): string {
    return this.sig;
  }

  /** Adopts a new view; true when the rings changed (ownership may have moved). */
  update(view: MembershipView): boolean {
    this.view = view;
    for (const peer of [...this.awaiting]) if (!this.isLive(peer)) this.awaiting.delete(peer);
    const next = ringsOf(view);
    const sig = signature(next);
    if (sig === this.sig) {
      this.settleIncoming();
      return false;
    }
    this.noteLosses(view, next);
    this.rings = next;
    this.sig = sig;
    this.epoch = view.version;
    this.replicaCache = new Map();
    this.disowned.clear();
    this.clearedBy = new Map();
    this.clearing = new Map();
    this.awaiting = new Set(view.list().filter((m) => m.id !== this.selfId && this.isLive(m.id)).map((m) => m.id));
    this.settleIncoming();
    return true;
  }

  /**
   * Keeps loss records up to date: a new one when nodes holding every copy of some actors (under the
   * last settled rings) are down at once; a node that comes back brings its copies back.
   */
  private noteLosses(view: MembershipView, next: Rings): void {
    const before = JSON.stringify(this.storedLosses());
    this.updateLosses(view, next);
    if (this.onLossesChanged && JSON.stringify(this.storedLosses()) !== before) this.onLossesChanged(this.storedLosses());
  }

  private updateLosses(view: MembershipView, next: Rings): void {
    const gone = (id: string): boolean => {
      const m = view.get(id);
      return !m || m.status === 'down';
    };
    // A dead node that is in the view again (restarted on its data directory) has its copies back.
    for (const loss of this.losses) for (const id of [...loss.dead]) if (!gone(id)) loss.dead.delete(id);
    this.losses = this.losses.filter((loss) => loss.dead.size >= Math.min(this.replicas, loss.rings.any.nodes.length));
    const settled = this.inSettled;
    const dead = settled.any.nodes.filter((id) => gone(id) && !next.any.nodes.includes(id));
    if (dead.length === 0 || dead.length < Math.min(this.replicas, settled.any.nodes.length)) return;
    if (this.losses.some((l) => l.rings === settled)) {
      for (const id of dead) this.losses.find((l) => l.rings === settled)!.dead.add(id);
      return;
    }
    this.losses.push({ rings: settled, dead: new Set(dead), at: this.now() });
    this.onLoss?.(dead);
  }

  /** Called when a loss record is made, with the nodes whose copies went with them. */
  onLoss: ((dead: string[]) => void) | undefined;
  /** Called with every record whenever they change, so the node can keep them across a restart. */
  onLossesChanged: ((losses: StoredLoss[]) => void) | undefined;

  /** The loss records, to store. */
  storedLosses(): StoredLoss[] {
    return this.losses.map((l) => ({ any: [...l.rings.any.nodes], control: [...l.rings.control.nodes], dead: [...l.dead], at: l.at }));
  }

  /** Takes back the records a previous incarnation of this node stored (ignores malformed ones). */
  restoreLosses(stored: unknown): void {
    if (!Array.isArray(stored)) return;
    const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string' && e !== '');
    for (const r of stored as Array<Partial<StoredLoss>>) {
      if (!r || !strings(r.any) || !strings(r.control) || !strings(r.dead) || typeof r.at !== 'number') continue;
      this.losses.push({ rings: { any: HashRing.of(r.any), control: HashRing.of(r.control) }, dead: new Set(r.dead), at: r.at });
    }
  }

  /**
   * Why `ref` has no copy on any live node, if every node that held it at the last settled rings is
   * down; undefined otherwise. An actor with no stored copy here is activated empty only when this
   * is undefined: one whose copies were lost is never silently recreated.
   */
  lostCopies(ref: ActorRef): string | undefined {
    for (const loss of this.losses) {
      const holders = this.preferenceList(ref, loss.rings);
      if (holders.length > 0 && holders.every((id) => loss.dead.has(id))) {
        return `every copy of ${refKey(ref)} was on ${holders.join(', ')}, down since ${new Date(loss.at).toISOString()}; it comes back when one of them does`;
      }
    }
    return undefined;
  }

  private settleIncoming(): void {
    if (this.awaiting.size > 0) return;
    this.inSettled = this.rings;
    // The barrier is down: per-actor clearances have nothing left to let through.
    if (this.clearedBy.size > 0) this.clearedBy = new Map();
  }

  /**
   * This node was declared down while alive (a partition cut it off): the majority failed its actors
   * over, so it settled nothing - neither what it owned then (not to be handed over) nor what it may
   * activate without waiting for the other nodes' hand-off. Call before the view that says so.
   */
  forgetSettled(): void {
    this.outSettled = this.ownersSettled = this.inSettled = { any: HashRing.of([]), control: HashRing.of([]) };
  }

  /** This node's run for rings `sig` offered every owner its copies. */
  markOwnersDone(sig: string): void {
    if (sig !== this.sig) return;
    this.ownersSettled = this.rings;
    this.activatedSinceSettled.clear();
  }

  /** This node's rebalance run for rings `sig` completed: what it owns now is what it owned last. */
  markOutgoingDone(sig: string): void {
    if (sig === this.sig) this.outSettled = this.rings;
  }

  /** The owner of `ref` at this node's last run that offered the owners their copies. */
  settledOwnerOf(ref: ActorRef): string | undefined {
    return this.preferenceList(ref, this.ownersSettled)[0];
  }

  /** Whether this node activated `key` as owner since its last run offered the owners their copies. */
  activatedLately(key: string): boolean {
    return this.activatedSinceSettled.has(key);
  }

  isLive(id: string): boolean {
    const m = this.view?.get(id);
    return !!m && LIVE_STATUSES.has(m.status);
  }

  private ringFor(ref: ActorRef, rings: Rings): HashRing | undefined {
    const cls = this.classOf(ref.type);
    return cls === 'control' ? rings.control : cls === 'any' ? rings.any : undefined;
  }

  /** Owner first, then replicas, under the current rings. */
  preferenceList(ref: ActorRef, rings: Rings = this.rings): string[] {
    const ring = this.ringFor(ref, rings);
    if (!ring) {
      // Pinned: the node named by the id (before any ':' suffix), while it is in the ring.
      const node = ref.id.split(':')[0]!;
      return rings.any.nodes.includes(node) ? [node] : [];
    }
    return ring.preferenceList(refKey(ref), this.replicas);
  }

  ownerOf(ref: ActorRef): string | undefined {
    // Asked for every call the router takes: the ring's remembered list, not a copy of it.
    const ring = this.ringFor(ref, this.rings);
    return ring ? ring.remembered(refKey(ref), this.replicas)[0] : this.preferenceList(ref)[0];
  }

  /** The preference list at this node's last completed rebalance run. */
  settledPreferenceList(ref: ActorRef): string[] {
    return this.preferenceList(ref, this.outSettled);
  }

  owns(ref: ActorRef): boolean {
    return this.ownerOf(ref) === this.selfId && !this.isDisowned(refKey(ref));
  }

  /** A replica refused our writes for the actor `key` (replication.ts). */
  disown(key: string): void {
    this.disowned.set(key, this.now() + DISOWN_MS);
  }

  private isDisowned(key: string): boolean {
    if (this.disowned.size === 0) return false;
    const until = this.disowned.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.disowned.delete(key);
    return false;
  }

  checkOwner(ref: ActorRef): void {
    const owner = this.ownerOf(ref);
    if (owner !== this.selfId) {
      throw new UnavailableError(owner ? `${refKey(ref)} is owned by ${owner}, not ${this.selfId}` : `no live node may host ${refKey(ref)}`);
    }
    if (this.isDisowned(refKey(ref))) {
      throw new UnavailableError(`${refKey(ref)}: a replica knows a newer owner; ${this.selfId} waits for that view`);
    }
    const key = refKey(ref);
    if (this.awaiting.size > 0 && this.preferenceList(ref, this.inSettled)[0] !== this.selfId && !this.isCleared(key)) {
      this.askClearance(ref, key);
      throw new UnavailableError(`${key} is being handed over to ${this.selfId} (waiting for ${[...this.awaiting].join(', ')})`);
    }
    // Activated here as its owner, after every peer offered its copy: from now on ours is the one.
    this.trust?.add(key);
    if (this.preferenceList(ref, this.ownersSettled)[0] !== this.selfId) this.activatedSinceSettled.add(key);
  }

  /** Every peer still awaited for the current rings cleared `key` (see clearedBy). */
  private isCleared(key: string): boolean {
    const by = this.clearedBy.get(key);
    if (!by) return false;
    for (const peer of this.awaiting) if (!by.has(peer)) return false;
    return true;
  }

  private askClearance(ref: ActorRef, key: string): void {
    if (!this.onBarrier || this.clearing.has(key) || this.clearing.size >= MAX_CLEARING) return;
    const clearing = this.clearing;
    // Resolves only once the actor may activate: a call waiting for it must never wake to meet the
    // barrier again at once (a peer without a link answers nothing, at once), or its retries spin.
    const cleared = new Promise<void>((resolve) => {
      const answered = (): void => {
        if (clearing.get(key) === cleared) clearing.delete(key);
        if (clearing === this.clearing && this.isCleared(key)) resolve();
      };
      this.onBarrier!(ref, key).then(answered, answered);
    });
    clearing.set(key, cleared);
  }

  /** `peer` answered, for the rings named by `sig`, that `key` may activate here as far as it is concerned. */
  cleared(peer: string, sig: string, key: string): void {
    if (sig !== this.sig) return;
    let by = this.clearedBy.get(key);
    if (!by) this.clearedBy.set(key, (by = new Set()));
    by.add(peer);
  }

  /**
   * Resolves once `ref`, which met the barrier, may activate here (and never, if its question comes
   * back without that): a call that met the barrier may wait for it, beside its own backoff.
   */
  clearance(ref: ActorRef): Promise<void> | undefined {
    return this.clearing.size === 0 ? undefined : this.clearing.get(refKey(ref));
  }

  replicasOf(ref: ActorRef): string[] {
    return this.preferenceList(ref).slice(1);
  }

  /** replicasOf on the write path: cached per actor until the rings change. */
  replicasOfKey(ref: ActorRef, key: string): readonly string[] {
    if (this.rings.any.nodes.length <= 1) return NONE;
    let replicas = this.replicaCache.get(key);
    if (!replicas) {
      // Never this node itself: when the rings moved between an actor's activation check and its
      // load, this node may be a replica rather than the owner (the next run releases the actor),
      // and a write "replicated" to itself would wait forever for a link that cannot exist.
      replicas = this.preferenceList(ref).filter((id, i) => i > 0 && id !== this.selfId);
      if (this.replicaCache.size >= 100_000) this.replicaCache.clear();
      this.replicaCache.set(key, replicas);
    }
    return replicas;
  }

  epochOf(): number {
    return this.epoch;
  }

  /** `peer` finished handing over for the rings named by `sig`; true when that lifted a barrier. */
  handoffDone(peer: string, sig: string): boolean {
    if (sig !== this.sig || !this.awaiting.delete(peer)) return false;
    this.settleIncoming();
    return true;
  }

  get awaitingHandoffs(): string[] {
    return [...this.awaiting];
  }

  /** Members that are up or suspect, for listing calls that go to every node. */
  ringMembers(): string[] {
    return [...this.rings.any.nodes];
  }
}
