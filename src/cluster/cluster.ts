/**
 * One node's membership in the cluster, assembled: transport, membership protocol, ring placement,
 * replication, hand-off and the router, wired to the node's local ActorSystem through the runtime's
 * seams (Placement, Replicator, ActorService). A node with no seeds is a cluster of one, on the same
 * code path.
 */
import type { ActorSystem } from '../runtime/runtime.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import { errorMessage } from '../errors.js';
import type { ClusterOptions } from './cluster-options.js';
import { HandoffCoordinator } from './handoff.js';
import type { MemberRole, MembershipView } from './membership.js';
import { MembershipService, type StoredMembership } from './membership-service.js';
import { ClusterReplicator } from './replication.js';
import { CopyTrust } from './copy-trust.js';
import { RingPlacement, type PlacementClass } from './ring-placement.js';
import { ClusterRouter } from './router.js';
import type { Link, Transport } from './transport.js';

const MEMBERSHIP_KEY = 'n\x00membership';
/** The loss records (ring-placement.ts), so that a restarted node still refuses to recreate lost actors. */
const LOSSES_KEY = 'n\x00losses';

export interface ClusterDeps {
  nodeId: string;
  role: MemberRole;
  store: Store;
  transport: Transport;
  clock: Clock;
  log: Logger;
  options: ClusterOptions;
  /** Placement class of each actor type. */
  classOf: (type: string) => PlacementClass;
}

/** What a node knows of its cluster from its data directory. */
export async function loadStoredMembership(store: Store): Promise<StoredMembership> {
  const raw = await store.get(MEMBERSHIP_KEY);
  if (raw === undefined) return { member: false, addresses: [] };
  try {
    const parsed = JSON.parse(raw) as StoredMembership;
    const addresses = Array.isArray(parsed.addresses) ? parsed.addresses.filter((a) => typeof a === 'string') : [];
    return { member: parsed.member === true, addresses, ...(typeof parsed.otherVoters === 'boolean' ? { otherVoters: parsed.otherVoters } : {}) };
  } catch {
    return { member: false, addresses: [] };
  }
}

/** The loss records a previous incarnation of this node stored (malformed data is ignored). */
export async function loadStoredLosses(store: Store): Promise<unknown> {
  const raw = await store.get(LOSSES_KEY);
  if (raw === undefined) return [];
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return [];
  }
}

export class Cluster {
  readonly placement: RingPlacement;
  readonly replicator: ClusterReplicator;
  router!: ClusterRouter;
  handoff!: HandoffCoordinator;
  membership!: MembershipService;
  private system!: ActorSystem;
  private upWaiters: Array<() => void> = [];

  /** Which stored copies this node trusts (copy-trust.ts): nothing, right after a start. */
  readonly trust = new CopyTrust();

  constructor(private readonly deps: ClusterDeps) {
    this.placement = new RingPlacement(deps.nodeId, deps.options.replicas, deps.classOf, this.trust, () => deps.clock.now());
    this.placement.onLoss = (dead) =>
      deps.log.error(
        { dead, replicas: deps.options.replicas },
        'more nodes went down at once than there are extra copies: actors held only by them answer DATA_LOSS until one of those nodes is back',
      );
    this.placement.onLossesChanged = (losses) =>
      void deps.store.write([losses.length > 0 ? { type: 'put', key: LOSSES_KEY, value: JSON.stringify(losses) } : { type: 'del', key: LOSSES_KEY }], true).catch(() => {});
    this.replicator = new ClusterReplicator(deps.nodeId, this.placement, deps.transport, deps.store, deps.clock, deps.log, deps.options.requestTimeoutMs, this.trust);
  }

  /** Wires the node's ActorSystem (built with this.placement and this.replicator); no network yet. */
  attach(system: ActorSystem): void {
    const { deps } = this;
    this.system = system;
    this.router = new ClusterRouter(system, this.placement, deps.transport, deps.clock, deps.options, deps.log);
    system.setPostman(this.router);
    this.handoff = new HandoffCoordinator(deps.nodeId, this.placement, system, deps.store, this.replicator, deps.transport, deps.clock, deps.log, deps.options, this.trust);
    // Until the membership says otherwise this node is fenced: no actor runs before it is up.
    system.setFenced(true);
  }

  /** Starts the protocol as the node serving on `address`. */
  start(address: string, seeds: string[], stored: StoredMembership): void {
    const { deps } = this;
    const system = this.system;
    const self = { id: deps.nodeId, address, role: deps.role, incarnation: deps.clock.now() };
    this.membership = new MembershipService(self, deps.transport, deps.clock, deps.log, deps.options, stored, {
      onView: (view, changes) => {
        // Declared down while alive (cut off by a partition): what this node holds is stale now.
        if (changes.some((c) => c.id === deps.nodeId && c.to === 'down')) {
          deps.log.warn({}, 'declared down while alive: dropping unreplicated writes, handing nothing over');
          this.replicator.abandon();
          this.placement.forgetSettled();
          this.handoff.declaredDown();
        }
        // A member declared down may be hung (SIGSTOP) rather than dead: requests waiting on its link
        // (an offer, a barrier question) would hold a rebalance run until they time out. End them now.
        for (const c of changes) if (c.to === 'down' && c.id !== deps.nodeId) deps.transport.link(c.id)?.close();
        this.viewChanged(view);
      },
      onFenced: (fenced) => system.setFenced(fenced),
      persist: (s) => void deps.store.write([{ type: 'put', key: MEMBERSHIP_KEY, value: JSON.stringify(s) }], false).catch(() => {}),
    });
    this.membership.register('actor.', this.router);
    this.membership.register('repl.', {
      onMessage: () => {},
      onRequest: (link: Link, method: string, body: unknown) =>
        method === 'repl.write' ? this.replicator.onRequest(link, method, body) : this.handoff.onRequest(link, method, body),
    });
    this.membership.start(seeds);
    system.setFenced(this.membership.isFenced);
    this.viewChanged(this.membership.view);
  }

  get nodeId(): string {
    return this.deps.nodeId;
  }

  private viewChanged(view: MembershipView): void {
    if (this.placement.update(view)) {
      this.deps.log.info({ ring: this.placement.signature, epoch: this.placement.epoch }, 'rings changed');
      this.handoff.ringChanged();
      this.router.ringsChanged();
    }
    if (this.isUp) for (const w of this.upWaiters.splice(0)) w();
  }

  get view(): MembershipView {
    return this.membership.view;
  }

  get isUp(): boolean {
    return this.membership.view.get(this.deps.nodeId)?.status === 'up';
  }

  get isFenced(): boolean {
    return this.membership.isFenced;
  }

  /** Resolves once this node is `up` in its own view. */
  whenUp(): Promise<void> {
    if (this.isUp) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  /**
   * Graceful leave: marks this node leaving (others stop placing actors here), hands its actors over
   * to their new owners, then announces `left`. Bounded by `deadlineMs`.
   */
  async leave(deadlineMs: number): Promise<void> {
    const { log } = this.deps;
    if (!this.membership) return;
    const others = this.membership.view.list().filter((m) => m.id !== this.deps.nodeId && (m.status === 'up' || m.status === 'suspect'));
    if (others.length > 0) {
      this.membership.markLeaving();
      const timeout = new Promise<void>((resolve) => this.deps.clock.setTimer(deadlineMs, resolve));
      await Promise.race([this.handoff.idle().then(() => this.handoff.idle()), timeout]);
      try {
        await this.membership.markLeft();
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'announcing left failed');
      }
    }
  }

  async stop(): Promise<void> {
    await this.membership?.stop();
  }
}
