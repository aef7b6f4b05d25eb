/**
 * Rebalancing after the rings change: hand-off of actors whose owner moved, copies to new replicas,
 * and fail-over activation.
 *
 * On every ring change a node, one run at a time:
 *  1. releases the loaded actors it no longer owns (their turn in progress finishes, nothing new
 *     starts) and waits until all its writes are durable locally and on their replicas;
 *  2. for each stored actor it owned before (or had loaded) and another live node owns now, sends the
 *     actor's whole key range to the new owner (`repl.replace`: the receiver replaces its copy), then
 *     drops its own copy unless it is still a replica;
 *  3. for each stored actor it owns now whose replica set gained a node, sends that node a copy
 *     (`repl.copy`: merged into whatever it holds; a state record never goes back to an older
 *     handled seq, so a copy racing newer replicated writes cannot undo them);
 *  4. tells every live peer it is done for these rings (`repl.done`), which lifts their hand-off
 *     barrier (ring-placement.ts), and activates the actors it now owns that have pending work -
 *     after a fail-over these are the dead owner's actors, read from this node's replica copy.
 * Batches of `handoffBatch` actors per request pace the work so a join does not stall the cluster.
 */
import type { ActorSystem } from '../runtime/runtime.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { keys, parseStored, refFromIndexKey, type Op, type Store } from '../runtime/store.js';
import type { StoredState } from '../runtime/envelope.js';
import { parseRefKey, refKey, type ActorRef } from '../runtime/ref.js';
import { UnavailableError, errorMessage } from '../errors.js';
import type { ClusterOptions } from './cluster-options.js';
import type { RingPlacement } from './ring-placement.js';
import type { ClusterReplicator } from './replication.js';
import type { Link, Transport } from './transport.js';
import type { SubHandler } from './membership-service.js';

type Entries = Array<[string, string]>;
interface ActorCopy {
  key: string;
  entries: Entries;
}

export class HandoffCoordinator implements SubHandler {
  private running: Promise<void> | undefined;
  private again = false;
  /** Actors this node had loaded when it lost them: it holds their latest writes. */
  private released = new Set<string>();
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
  ) {}

  /** Call on every ring change (synchronously after placement.update returned true). */
  ringChanged(): void {
    for (const ref of this.local.loadedRefs()) if (!this.placement.owns(ref)) this.released.add(refKey(ref));
    void this.local.releaseNotOwned();
    this.kick();
  }

  /** Runs a pass (or queues another after the current one). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run()
      .catch((err) => this.log.error({ err: errorMessage(err) }, 'rebalance failed'))
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

  private async run(): Promise<void> {
    const sig = this.placement.signature;
    await this.local.releaseNotOwned();
    await this.store.committer.drain();
    await this.replicator.drain();
    await this.transfer();
    if (sig !== this.placement.signature) {
      this.again = true;
      return;
    }
    await this.announceDone(sig);
    await this.local.recover();
    this.runs++;
  }

  private async transfer(): Promise<void> {
    const registry = await this.store.scanKeys(keys.registryPrefix());
    const handoffs = new Map<string, ActorRef[]>();
    const copies = new Map<string, ActorRef[]>();
    const add = (m: Map<string, ActorRef[]>, peer: string, ref: ActorRef): void => {
      const list = m.get(peer);
      if (list) list.push(ref);
      else m.set(peer, [ref]);
    };
    for (const k of registry) {
      const ref = refFromIndexKey(k);
      const key = refKey(ref);
      const now = this.placement.preferenceList(ref);
      const before = this.placement.previousPreferenceList(ref);
      const owner = now[0];
      if (owner && owner !== this.selfId && (before[0] === this.selfId || this.released.has(key))) {
        add(handoffs, owner, ref);
      } else if (owner === this.selfId) {
        for (const replica of now.slice(1)) if (!before.includes(replica)) add(copies, replica, ref);
      }
    }
    for (const [peer, refs] of handoffs) await this.send(peer, 'repl.replace', refs, true);
    for (const [peer, refs] of copies) await this.send(peer, 'repl.copy', refs, false);
  }

  private async send(peer: string, method: 'repl.replace' | 'repl.copy', refs: ActorRef[], handoff: boolean): Promise<void> {
    for (let i = 0; i < refs.length; i += this.options.handoffBatch) {
      const slice = refs.slice(i, i + this.options.handoffBatch);
      const actors: ActorCopy[] = [];
      for (const ref of slice) actors.push({ key: refKey(ref), entries: await this.readActor(ref) });
      const link = await this.linkTo(peer);
      if (!link) {
        this.log.warn({ peer, actors: refs.length - i }, `${method}: peer left before it got them`);
        return;
      }
      const answer = await link.request<{ refused: string[] }>(method, { from: this.selfId, epoch: this.placement.epoch, actors }, this.options.requestTimeoutMs);
      if (answer.refused.length > 0) this.log.warn({ peer, refused: answer.refused.slice(0, 5) }, `${method}: peer refused actors it has loaded`);
      if (handoff) {
        this.handedOff += slice.length;
        // Our copy is kept only while we are still one of the actor's replicas.
        const drop: Op[] = [];
        for (const ref of slice) {
          this.released.delete(refKey(ref));
          if (!this.placement.preferenceList(ref).includes(this.selfId)) drop.push(...(await this.deleteOps(ref)));
        }
        if (drop.length > 0) await this.store.write(drop, false);
      } else this.copied += slice.length;
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

  private async readActor(ref: ActorRef): Promise<Entries> {
    const entries: Entries = await this.store.scan(keys.actor(ref));
    for (const key of [keys.registry(ref), keys.awake(ref)]) {
      const value = await this.store.get(key);
      if (value !== undefined) entries.push([key, value]);
    }
    return entries;
  }

  private async deleteOps(ref: ActorRef): Promise<Op[]> {
    const own = await this.store.scanKeys(keys.actor(ref));
    return [...own, keys.registry(ref), keys.awake(ref)].map((key) => ({ type: 'del' as const, key }));
  }

  private async announceDone(sig: string): Promise<void> {
    const peers = this.transport.links().filter((l) => this.placement.isLive(l.peer.id));
    await Promise.all(peers.map((l) => l.request('repl.done', { from: this.selfId, sig }, this.options.requestTimeoutMs).catch(() => {})));
  }

  // --- the receiving side -------------------------------------------------------------------------

  onMessage(): void {}

  async onRequest(_link: Link, method: string, body: unknown): Promise<unknown> {
    const b = body as { from: string; sig?: string; actors?: ActorCopy[] };
    switch (method) {
      case 'repl.done': {
        if (this.placement.handoffDone(b.from, b.sig ?? '')) {
          // A barrier lifted: actors handed over to us may have pending work.
          void this.local.recover().catch((err) => this.log.error({ err: errorMessage(err) }, 'recovery after hand-off failed'));
        }
        return null;
      }
      case 'repl.replace':
      case 'repl.copy':
        return this.receive(method === 'repl.replace', b.actors ?? []);
      default:
        throw new UnavailableError(`unknown method ${method}`);
    }
  }

  private async receive(replace: boolean, actors: ActorCopy[]): Promise<{ refused: string[] }> {
    const refused: string[] = [];
    const ops: Op[] = [];
    for (const actor of actors) {
      const ref = parseRefKey(actor.key);
      if (this.local.isLoaded(ref)) {
        refused.push(actor.key);
        continue;
      }
      const stateKey = keys.state(keys.actor(ref));
      if (replace) {
        const incoming = new Set(actor.entries.map(([k]) => k));
        for (const op of await this.deleteOps(ref)) if (!incoming.has(op.key)) ops.push(op);
        for (const [key, value] of actor.entries) ops.push({ type: 'put', key, value });
      } else {
        const existing = await this.store.get(stateKey);
        const ours = existing === undefined ? -1 : parseStored<StoredState>(stateKey, existing).h;
        for (const [key, value] of actor.entries) {
          if (key === stateKey && parseStored<StoredState>(key, value).h < ours) continue;
          ops.push({ type: 'put', key, value });
        }
      }
    }
    if (ops.length > 0) await this.store.write(ops, true);
    return { refused };
  }
}

