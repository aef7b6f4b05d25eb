/**
 * The membership protocol of one node: joining through seeds, gossip of versioned views,
 * heartbeats and failure detection, down votes by a majority of the voters, and fencing. It feeds the
 * pure MembershipView / DownVotes state machines (membership.ts) and publishes each new snapshot.
 *
 * Messages (over the Transport, see transport.ts):
 *   hb       heartbeat, no body, every heartbeatIntervalMs to every linked peer
 *   gossip   { view, votes }: the sender's whole view and the down votes it casts itself; sent to all
 *            peers on every change of ours, and to one random peer every gossipIntervalMs
 *
 * Suspicion: a peer is suspected by this node when its link has been down for linkGraceMs (a killed
 * process resets its TCP connection at once) or when the phi detector says its heartbeats stopped (a
 * hung process). A voter's suspicion is its down vote; when a strict majority of the voters votes a
 * member down at its current incarnation, any node that sees the majority marks it down.
 *
 * Fencing: a node, voter or worker, that does not reach a strict majority of the voters (itself
 * included when it votes) is fenced: the node stops handling messages until it reaches one again.
 * Fencing is evaluated every tick, and a link must be lost for linkGraceMs before a peer counts as
 * unreachable, the same delay after which the other side suspects it - so a cut-off node fences
 * itself no later than the majority starts voting it down (which also needs the vote round trip).
 *
 * Calls are made from the event loop only; handlers never run concurrently.
 */
import type { Clock, TimerHandle } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { ClusterOptions } from './cluster-options.js';
import { FailureDetectorRegistry } from './failure-detector.js';
import {
  DownVotes,
  diffViews,
  MembershipView,
  isVoterRole,
  type DownVote,
  type Member,
  type MemberChange,
  type MemberStatus,
  type Tombstone,
} from './membership.js';
import type { Link, LinkHandler, PeerInfo, Transport } from './transport.js';

/** What the node remembers of its cluster across restarts. */
/** How long a member we never had a link to may stay unlinked before it is suspected. */
const FIRST_CONTACT_GRACE_MS = 2_000;

export interface StoredMembership {
  /** It was a member: it must rejoin its cluster, never start a new one. */
  member: boolean;
  /** Addresses of the members it last knew, tried besides the seeds. */
  addresses: string[];
  /**
   * Another voter was in its voting set. A node that was the only voter (a bootstrap whose other
   * members were workers, as in `cei up`) is a majority of one and comes back up on its own.
   * Records from before this field count as true when they list any member.
   */
  otherVoters?: boolean;
}

export interface MembershipEvents {
  /** A new snapshot; `changes` lists members whose status (or incarnation) changed. */
  onView?(view: MembershipView, changes: MemberChange[]): void;
  onFenced?(fenced: boolean): void;
  /** Persist what a restart needs (relaxed write is enough). */
  persist?(stored: StoredMembership): void;
}

/** The request/message handlers other cluster parts register on the same links. */
export type SubHandler = Omit<LinkHandler, 'onLinkUp' | 'onLinkDown'>;

interface WireView {
  version: number;
  members: Member[];
  tombstones: Tombstone[];
}

function encodeView(view: MembershipView): WireView {
  return { version: view.version, members: view.list(), tombstones: [...view.tombstones.values()] };
}

function decodeView(wire: WireView): MembershipView {
  return MembershipView.of(wire.members, { version: wire.version, tombstones: wire.tombstones });
}

export class MembershipService implements LinkHandler {
  private viewNow: MembershipView;
  private readonly votes = new DownVotes();
  private readonly detectors: FailureDetectorRegistry;
  /** Peers this node suspects now (its own votes, when it votes). */
  private readonly suspects = new Set<string>();
  /** When each peer's link was last seen missing (cleared when a link is up). */
  private readonly linkLostAt = new Map<string, number>();
  private readonly everLinked = new Set<string>();
  private timers: TimerHandle[] = [];
  private lastTick: number;
  /** Until then, silence is not held against peers: this node's own event loop was stalled. */
  private stalledUntil = 0;
  /** The highest incarnation of ours that we know the voters declared down (see receiveGossip). */
  private downIncarnationSeen = 0;
  private readonly lastProof = new Map<string, number>();
  /** The incarnation this process started with. */
  private readonly firstIncarnation: number;
  private fenced = false;
  private gossipQueued = false;
  private stopped = false;
  private readonly started: number;
  private readonly subs = new Map<string, SubHandler>();
  private linkListeners: Array<(link: Link, up: boolean) => void> = [];

  constructor(
    private self: PeerInfo,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: ClusterOptions,
    private readonly stored: StoredMembership,
    private readonly events: MembershipEvents = {},
  ) {
    this.detectors = new FailureDetectorRegistry(clock, options.phi);
    this.firstIncarnation = self.incarnation;
    this.started = clock.now();
    this.lastTick = this.started;
    this.viewNow = MembershipView.empty().with(this.selfMember('joining'));
  }

  get view(): MembershipView {
    return this.viewNow;
  }

  get id(): string {
    return this.self.id;
  }

  get isFenced(): boolean {
    return this.fenced;
  }

  /** Routes messages and requests whose method starts with `prefix` (e.g. "actor.") to `handler`. */
  register(prefix: string, handler: SubHandler): void {
    this.subs.set(prefix, handler);
  }

  onLink(listener: (link: Link, up: boolean) => void): void {
    this.linkListeners.push(listener);
  }

  private selfMember(status: MemberStatus): Member {
    return { id: this.self.id, address: this.self.address, role: this.self.role, status, incarnation: this.self.incarnation, since: this.clock.now() };
  }

  /** Starts the protocol: links to seeds and known members, heartbeats, ticks. */
  start(seeds: string[]): void {
    this.transport.start(this.self, this);
    const targets = new Set([...seeds, ...this.stored.addresses].filter((a) => a !== this.self.address));
    for (const address of targets) this.transport.dial(address);
    // A bootstrap node with nothing to join and no other member it ever knew is a cluster of one at
    // once (also when it restarts as one); with seeds it waits for them up to joinTimeoutMs. A node
    // that knew other members never starts a cluster of its own.
    if (this.self.role === 'bootstrap' && targets.size === 0) this.becomeUp();
    this.every(this.options.heartbeatIntervalMs, () => this.heartbeat());
    this.every(this.options.gossipIntervalMs, () => this.gossipToRandomPeer());
    this.every(this.options.tickMs, () => this.tick());
    this.evaluateFence();
  }

  private every(ms: number, fn: () => void): void {
    const schedule = (): void => {
      const handle = this.clock.setTimer(ms, () => {
        if (this.stopped) return;
        fn();
        schedule();
      });
      this.timers.push(handle);
      if (this.timers.length > 16) this.timers = this.timers.slice(-8);
    };
    schedule();
  }

  private becomeUp(): void {
    const me = this.viewNow.get(this.self.id);
    if (me?.status === 'joining' && me.incarnation === this.self.incarnation) this.update(this.viewNow.with({ ...me, status: 'up', since: this.clock.now() }));
  }

  /** Graceful leave, step one: others stop placing actors here. */
  markLeaving(): void {
    const me = this.viewNow.get(this.self.id);
    if (me && (me.status === 'up' || me.status === 'joining' || me.status === 'suspect')) {
      this.update(this.viewNow.with({ ...me, status: 'leaving', since: this.clock.now() }));
    }
  }

  /** Graceful leave, last step: announce `left` and wait (bounded) until a peer acknowledged it. */
  async markLeft(): Promise<void> {
    const me = this.viewNow.get(this.self.id);
    if (me && me.status !== 'left') this.update(this.viewNow.with({ ...me, status: 'left', since: this.clock.now() }));
    const body = { view: encodeView(this.viewNow), votes: [] };
    await Promise.all(this.transport.links().map((l) => l.request('member.gossip', body, 1_000).catch(() => {})));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    await this.transport.stop();
  }

  // --- view changes -------------------------------------------------------------------------------

  private update(next: MembershipView, changes?: MemberChange[]): void {
    if (next === this.viewNow) return;
    const before = this.viewNow;
    this.viewNow = next;
    const diff = changes ?? diffViews(before, next);
    this.afterChange(diff);
  }

  private afterChange(changes: MemberChange[]): void {
    for (const c of changes) {
      if (c.to === 'down' || c.to === 'left' || c.to === 'dropped') {
        this.votes.forget(c.id);
        this.suspects.delete(c.id);
        this.detectors.remove(c.id);
      }
    }
    // Someone says we are suspect or down while we are alive: refute with a new incarnation.
    const me = this.viewNow.get(this.self.id);
    if (me && me.incarnation === this.self.incarnation && (me.status === 'suspect' || me.status === 'down')) {
      const incarnation = Math.max(this.self.incarnation + 1, this.clock.now());
      this.log.warn({ was: me.status, incarnation }, me.status === 'down' ? 'declared down while alive: rejoining' : 'suspected while alive: refuting');
      this.self = { ...this.self, incarnation };
      const status: MemberStatus = me.status === 'down' ? 'joining' : 'up';
      if (me.status === 'down') this.downIncarnationSeen = Math.max(this.downIncarnationSeen, me.incarnation);
      this.viewNow = this.viewNow.with({ ...me, incarnation, status, since: this.clock.now() });
    }
    this.persist();
    this.events.onView?.(this.viewNow, changes);
    this.queueGossip();
    this.evaluateFence();
  }

  private persist(): void {
    const addresses = this.viewNow
      .list()
      .filter((m) => m.id !== this.self.id && m.status !== 'left')
      .map((m) => m.address);
    const member = this.viewNow.get(this.self.id)?.status !== 'joining' || this.stored.member;
    const otherVoters = this.viewNow.voters().some((v) => v.id !== this.self.id);
    this.events.persist?.({ member, addresses, otherVoters });
  }

  // --- gossip ---------------------------------------------------------------------------------------

  private myVotes(): DownVote[] {
    return this.votes.list().filter((v) => v.voter === this.self.id);
  }

  private queueGossip(): void {
    if (this.gossipQueued || this.stopped) return;
    this.gossipQueued = true;
    queueMicrotask(() => {
      this.gossipQueued = false;
      const body = { view: encodeView(this.viewNow), votes: this.myVotes() };
      for (const link of this.transport.links()) link.send('member.gossip', body);
    });
  }

  private gossipToRandomPeer(): void {
    const links = this.transport.links();
    if (links.length === 0) return;
    const link = links[Math.floor(Math.random() * links.length)]!;
    link.send('member.gossip', { view: encodeView(this.viewNow), votes: this.myVotes() });
  }

  private receiveGossip(link: Link, body: { view: WireView; votes: DownVote[] }): void {
    let other: MembershipView;
    try {
      other = decodeView(body.view);
    } catch (err) {
      this.log.warn({ peer: link.peer.id, err: (err as Error).message }, 'malformed gossip ignored');
      return;
    }
    // The sender's own votes replace what it voted before.
    const sender = link.peer.id;
    let votesChanged = false;
    for (const v of this.votes.list()) {
      if (v.voter === sender && !body.votes.some((b) => b.member === v.member)) {
        this.votes.clear(sender, v.member);
        votesChanged = true;
      }
    }
    for (const v of body.votes ?? []) {
      if (v.voter !== sender) continue;
      this.votes.suspect(sender, v.member, v.incarnation);
      votesChanged = true;
    }
    const merged = this.viewNow.merge(other);
    if (merged.view !== this.viewNow) this.update(merged.view, merged.changes);
    // We refuted a suspicion with a newer incarnation, but the voters had already declared the older
    // one down: they failed our actors over meanwhile, and the merge (newer incarnation wins) hides
    // that from our own view. Handle it as being declared down while alive.
    const said = other.get(this.self.id);
    // (An incarnation from before this process started is a previous life's: its death is no news.)
    if (said && said.status === 'down' && said.incarnation >= this.firstIncarnation && said.incarnation < this.self.incarnation && said.incarnation > this.downIncarnationSeen) {
      this.rejoinAfterDown(said.incarnation);
    }
    if (votesChanged) this.applyVerdicts();
  }

  private rejoinAfterDown(declaredAt: number): void {
    const me = this.viewNow.get(this.self.id);
    if (!me) return;
    this.downIncarnationSeen = declaredAt;
    const incarnation = Math.max(this.self.incarnation + 1, this.clock.now());
    this.log.warn({ declaredAt, incarnation }, 'declared down while alive (an incarnation already refuted): rejoining');
    this.self = { ...this.self, incarnation };
    this.viewNow = this.viewNow.with({ ...me, incarnation, status: 'joining', since: this.clock.now() });
    this.afterChange([{ id: this.self.id, from: me.status, to: 'down', incarnation: declaredAt }]);
  }

  // --- failure detection ----------------------------------------------------------------------------

  private heartbeat(): void {
    for (const link of this.transport.links()) link.send('member.hb', null);
  }

  private tick(): void {
    const now = this.clock.now();
    const sinceLastTick = now - this.lastTick;
    // A tick far later than scheduled means this process itself stalled (GC, a long turn, CPU
    // starvation): the silence it saw is its own. Give heartbeats time to arrive before judging.
    if (now - this.lastTick > this.options.tickMs * 4 + 100) this.stalledUntil = now + this.options.heartbeatIntervalMs * 3;
    this.lastTick = now;
    const before = this.viewNow;
    const me = this.viewNow.get(this.self.id);
    let changed = false;
    for (const m of this.viewNow.list()) {
      if (m.id === this.self.id || !(m.status === 'joining' || m.status === 'up' || m.status === 'suspect' || m.status === 'leaving')) continue;
      const reachable = this.reachable(m.id, now);
      if (!reachable && !this.suspects.has(m.id)) {
        this.suspects.add(m.id);
        changed = true;
        // What the suspicion rests on, for telling a dead peer from a stalled or flooded link.
        const heard = this.detectors.lastHeartbeatAt(m.id);
        const link = this.transport.link(m.id);
        this.log.info(
          { peer: m.id, link: link?.open ? 'open' : 'down', silentMs: heard === undefined ? null : now - heard, phi: Number(this.detectors.phi(m.id).toFixed(1)), sinceLastTickMs: sinceLastTick },
          'peer unreachable: suspected',
        );
      } else if (reachable && this.suspects.has(m.id)) {
        this.suspects.delete(m.id);
        changed = true;
      }
      const current = this.viewNow.get(m.id)!;
      if (!reachable && current.status === 'up') {
        this.viewNow = this.viewNow.with({ ...current, status: 'suspect', since: now });
        changed = true;
      }
    }
    if (me && isVoterRole(me.role) && (me.status === 'up' || me.status === 'joining' || me.status === 'leaving')) {
      for (const id of this.suspects) {
        const m = this.viewNow.get(id);
        if (m) this.votes.suspect(this.self.id, id, m.incarnation);
      }
      for (const v of this.myVotes()) if (!this.suspects.has(v.member)) this.votes.clear(this.self.id, v.member);
    }
    // Joining members are brought up by any voter that is up and reaches them.
    if (me && me.status === 'up' && isVoterRole(me.role)) {
      for (const m of this.viewNow.list()) {
        if (m.status === 'joining' && m.id !== this.self.id && this.reachable(m.id, now)) {
          this.viewNow = this.viewNow.with({ ...m, status: 'up', since: now });
          changed = true;
        }
      }
    }
    if (me && me.status === 'joining') this.maybeSelfUp(now);
    if (changed && this.viewNow !== before) this.afterChange(diffViews(before, this.viewNow));
    this.applyVerdicts();
    this.evaluateFence();
    this.pruneView(now);
  }

  private maybeSelfUp(now: number): void {
    const voters = this.viewNow.voters();
    const anyVoterUp = voters.some((v) => v.id !== this.self.id && v.status === 'up');
    if (anyVoterUp) return;
    if (!isVoterRole(this.self.role)) return;
    if (!this.stored.member && this.self.role === 'bootstrap' && this.transport.links().length === 0) {
      // A fresh bootstrap whose seeds never answered: a new cluster.
      if (now - this.started >= this.options.joinTimeoutMs) this.becomeUp();
      return;
    }
    // A node that was a member never comes up on its own: until it has heard of the other voters its
    // view holds only itself, which would be a majority of one - a second cluster.
    const knewOtherVoters = this.stored.otherVoters ?? this.stored.addresses.length > 0;
    if (this.stored.member && knewOtherVoters && voters.every((v) => v.id === this.self.id)) return;
    // Every voter is (re)joining, as after a full restart: once a majority of them reach each other, the
    // first by id among them comes up and brings the others up.
    const reachable = voters.filter((v) => v.id === this.self.id || this.reachable(v.id, now)).map((v) => v.id);
    if (this.viewNow.hasMajority(reachable) && reachable.sort()[0] === this.self.id) this.becomeUp();
  }

  private reachable(peer: string, now: number): boolean {
    const link = this.transport.link(peer);
    if (!link || !link.open) {
      const lost = this.linkLostAt.get(peer);
      if (lost === undefined) {
        this.linkLostAt.set(peer, now);
        return true;
      }
      // A member we never had a link to (just heard of it) gets time to be dialed; one whose link
      // dropped gets linkGraceMs - a killed process resets its connections, a live one redials at once.
      const grace = this.everLinked.has(peer) ? this.options.linkGraceMs : Math.max(this.options.linkGraceMs, FIRST_CONTACT_GRACE_MS);
      return now - lost < grace;
    }
    return now < this.stalledUntil || this.detectors.isAvailable(peer);
  }

  private applyVerdicts(): void {
    const down = this.votes.verdicts(this.viewNow);
    if (down.length === 0) return;
    let next = this.viewNow;
    const now = this.clock.now();
    for (const id of down) {
      const m = next.get(id);
      if (m) {
        this.log.warn({ peer: id, incarnation: m.incarnation }, 'member declared down by a majority of the voters');
        next = next.with({ ...m, status: 'down', since: now });
      }
    }
    this.update(next);
  }

  private evaluateFence(): void {
    const now = this.clock.now();
    const reachable = this.viewNow
      .voters()
      .filter((v) => v.id === this.self.id || this.reachable(v.id, now))
      .map((v) => v.id);
    const me = this.viewNow.get(this.self.id);
    const fenced = !this.viewNow.hasMajority(reachable) || !me || me.status === 'down';
    if (fenced !== this.fenced) {
      this.fenced = fenced;
      this.log.warn({ fenced, reachableVoters: reachable.length, voters: this.viewNow.voters().length }, fenced ? 'fenced: no majority of voters' : 'majority of voters reached: unfenced');
      this.events.onFenced?.(fenced);
    }
  }

  private pruneView(now: number): void {
    const pruned = this.viewNow.prune(now, this.options.downDropMs);
    if (pruned.view !== this.viewNow) this.update(pruned.view, pruned.changes);
  }

  // --- LinkHandler ----------------------------------------------------------------------------------

  onLinkUp(link: Link): void {
    this.everLinked.add(link.peer.id);
    this.linkLostAt.delete(link.peer.id);
    this.detectors.remove(link.peer.id);
    this.detectors.watch(link.peer.id);
    this.detectors.heartbeat(link.peer.id);
    // Dial it from now on too (it may be a member we only heard of through a seed).
    link.send('member.gossip', { view: encodeView(this.viewNow), votes: this.myVotes() });
    for (const l of this.linkListeners) l(link, true);
  }

  onLinkDown(link: Link): void {
    if (!this.linkLostAt.has(link.peer.id)) this.linkLostAt.set(link.peer.id, this.clock.now());
    for (const l of this.linkListeners) l(link, false);
  }

  onMessage(link: Link, method: string, body: unknown): void {
    if (method === 'member.hb') {
      this.detectors.heartbeat(link.peer.id);
      return;
    }
    if (method === 'member.gossip') {
      this.detectors.heartbeat(link.peer.id);
      this.receiveGossip(link, body as { view: WireView; votes: DownVote[] });
      this.dialKnownMembers();
      return;
    }
    this.proofOfLife(link.peer.id);
    this.sub(method)?.onMessage(link, method, body);
  }

  /**
   * Any frame from a peer shows it is alive: under load its heartbeat may wait behind data on the
   * same stream. Counted at most twice per heartbeat interval, so a flood of frames does not teach
   * the detector that silences longer than a few milliseconds are unusual.
   */
  private proofOfLife(peer: string): void {
    const now = this.clock.now();
    if (now - (this.lastProof.get(peer) ?? 0) < this.options.heartbeatIntervalMs / 2) return;
    this.lastProof.set(peer, now);
    this.detectors.heartbeat(peer);
  }

  async onRequest(link: Link, method: string, body: unknown): Promise<unknown> {
    this.proofOfLife(link.peer.id);
    if (method === 'member.gossip') {
      this.receiveGossip(link, body as { view: WireView; votes: DownVote[] });
      return null;
    }
    const sub = this.sub(method);
    if (!sub) throw new Error(`no handler for ${method}`);
    return sub.onRequest(link, method, body);
  }

  private sub(method: string): SubHandler | undefined {
    const dot = method.indexOf('.');
    return this.subs.get(method.slice(0, dot + 1));
  }

  /** Every member we know gets a link (full mesh): dial the ones we have none to. */
  private dialKnownMembers(): void {
    for (const m of this.viewNow.list()) {
      if (m.id === this.self.id || m.status === 'down' || m.status === 'left') continue;
      if (!this.transport.link(m.id)) this.transport.dial(m.address);
    }
  }
}
