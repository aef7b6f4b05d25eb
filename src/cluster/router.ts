/**
 * The cluster's ActorService: any node accepts any call and forwards it to the actor's owner (or
 * handles it when it is the owner). While ownership settles (a join, a leave, a fail-over, a
 * hand-off in progress) a call meets retryable errors; the router retries them with backoff until
 * routeTimeoutMs, then gives the last error to the caller.
 *
 * A forwarded tell whose answer is lost (no answer in time on a loaded node, a link that drops with
 * it in flight) may have been enqueued by the owner all the same, so its retry must be recognised:
 * a tell the caller sent without a message id gets one of the router's from its first forward on
 * (the owner's dedup window answers the retry with the first one's seq). The caller, who sent it
 * once, gets its own (empty) id back and no duplicate flag. A tell handled here never needs one: a
 * local enqueue that failed did not happen.
 *
 * Node-to-node methods (prefix "actor."), answered by the owner's local ActorSystem only - a node
 * never forwards a forwarded call, so a call makes at most one network hop per attempt:
 *   actor.spawn, actor.tell, actor.ask, actor.stop, actor.describe, actor.deadLetters,
 *   actor.redrive, actor.list (the owned actors of that node)
 */
import type { ActorService, TellOptions } from '../runtime/actor-service.js';
import { compareRefKeys, type ActorDescription, type ActorSystem, type DeadLetter } from '../runtime/runtime.js';
import type { TellAck } from '../runtime/envelope.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { Backoff } from '../runtime/backoff.js';
import { refKey, validateRef, type ActorRef } from '../runtime/ref.js';
import { randomUUID } from 'node:crypto';
import { CeiError, InvalidArgumentError, UnavailableError } from '../errors.js';
import type { ClusterOptions } from './cluster-options.js';
import type { RingPlacement } from './ring-placement.js';
import type { Link, Transport } from './transport.js';
import type { SubHandler } from './membership-service.js';

const RETRY = { initialMs: 5, maxMs: 250, multiplier: 2, jitter: 0.2 };
/** The longest the owner holds a forwarded call that met the hand-off barrier while its clearance is asked for. */
const CLEARANCE_WAIT_MS = 250;
/** A call retrying for this long is logged once, with the error it keeps meeting. */
const SLOW_ROUTE_MS = 3_000;

function retryable(err: unknown): boolean {
  return err instanceof CeiError && err.retryable;
}

export class ClusterRouter implements ActorService, SubHandler {
  constructor(
    private readonly local: ActorSystem,
    private readonly placement: RingPlacement,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly options: ClusterOptions,
    private readonly log: Logger,
  ) {}

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimer(ms, resolve));
  }

  /** Runs the call where `ref` lives, retrying retryable failures until the route deadline. */
  /** `body` is the request's, or a function that makes it for each forward. */
  private async route<T>(ref: ActorRef, method: string, body: unknown, local: () => Promise<T>, timeoutMs?: number): Promise<T> {
    const started = this.clock.now();
    const deadline = started + (timeoutMs ?? this.options.routeTimeoutMs);
    const backoff = new Backoff(RETRY);
    let warned = false;
    for (;;) {
      let failure: unknown;
      try {
        const owner = this.placement.ownerOf(ref);
        if (!owner) throw new UnavailableError(`no live node may host ${refKey(ref)}`);
        if (owner === this.placement.selfId) return await local();
        const link = this.transport.link(owner);
        if (!link) throw new UnavailableError(`no link to ${owner}, the owner of ${refKey(ref)}`);
        const request = typeof body === 'function' ? (body as () => unknown)() : body;
        return await link.request<T>(method, request, Math.max(1, Math.min(this.options.requestTimeoutMs, deadline - this.clock.now())));
      } catch (err) {
        // A fenced node answers at once: waiting here for the partition to heal would turn its
        // UNAVAILABLE into the caller's DEADLINE_EXCEEDED, when the caller could try another node.
        if (!retryable(err) || this.local.isFenced) throw err;
        failure = err;
      }
      const delay = backoff.next();
      if (!warned && this.clock.now() - started >= SLOW_ROUTE_MS) {
        // Ownership normally settles in well under this: say what the call keeps meeting.
        warned = true;
        this.log.warn({ actor: refKey(ref), method, ms: this.clock.now() - started, err: (failure as Error).message }, 'call still retrying');
      }
      if (this.clock.now() + delay >= deadline) throw failure;
      // An actor waiting on the hand-off barrier here may be cleared for activation any moment.
      const cleared = this.placement.clearance(ref);
      await (cleared ? Promise.race([cleared, this.sleep(delay)]) : this.sleep(delay));
    }
  }

  spawn(ref: ActorRef, init?: unknown, parent?: string): Promise<{ created: boolean; node: string }> {
    return this.route(ref, 'actor.spawn', { ref, init, parent }, () => this.local.spawn(ref, init, parent));
  }

  tell(ref: ActorRef, payload: unknown, opts: TellOptions = {}): Promise<TellAck> {
    if (opts.messageId) return this.route(ref, 'actor.tell', { ref, payload, opts }, () => this.local.tell(ref, payload, opts));
    // No id of the caller's: one of ours from the first forward on, for every attempt after it too.
    let routed: TellOptions | undefined;
    const forward = () => ({ ref, payload, opts: (routed ??= { ...opts, messageId: `route:${randomUUID()}` }) });
    return this.route(ref, 'actor.tell', forward, () => this.local.tell(ref, payload, routed ?? opts)).then((ack) =>
      routed === undefined ? ack : { ...ack, messageId: opts.messageId ?? '', duplicate: false },
    );
  }

  ask<T = unknown>(ref: ActorRef, payload: unknown, timeoutMs?: number, from?: ActorRef): Promise<T> {
    const ms = timeoutMs && timeoutMs > 0 ? timeoutMs : this.local.options.defaultAskTimeoutMs;
    return this.route<T>(ref, 'actor.ask', { ref, payload, timeoutMs: ms, from }, () => this.local.ask<T>(ref, payload, ms, from), ms);
  }

  stop(ref: ActorRef): Promise<void> {
    return this.route(ref, 'actor.stop', { ref }, () => this.local.stop(ref));
  }

  describe(ref: ActorRef): Promise<ActorDescription> {
    return this.route(ref, 'actor.describe', { ref }, () => this.local.describe(ref));
  }

  deadLetters(ref: ActorRef): Promise<DeadLetter[]> {
    return this.route(ref, 'actor.deadLetters', { ref }, () => this.local.deadLetters(ref));
  }

  redrive(ref: ActorRef, seqs?: number[]): Promise<number> {
    return this.route(ref, 'actor.redrive', { ref, seqs }, () => this.local.redrive(ref, seqs));
  }

  /** Every live node lists the actors it owns; the pages are merged in ref order. */
  async list(opts: { type?: string; pageSize?: number; pageToken?: string } = {}): Promise<{ actors: ActorDescription[]; nextPageToken: string }> {
    const pageSize = Math.min(Math.max(opts.pageSize || 100, 1), 1000);
    const nodes = this.placement.ringMembers();
    const pages = await Promise.all(
      nodes.map((node) => {
        if (node === this.placement.selfId) return this.local.list({ ...opts, pageSize });
        const link = this.transport.link(node);
        if (!link) throw new UnavailableError(`no link to ${node}: the listing would be incomplete`);
        return link.request<{ actors: ActorDescription[]; nextPageToken: string }>('actor.list', { ...opts, pageSize }, this.options.requestTimeoutMs);
      }),
    );
    const all = pages.flatMap((p) => p.actors).sort((a, b) => compareRefKeys(refKey(a.ref), refKey(b.ref)));
    const more = all.length > pageSize || pages.some((p) => p.nextPageToken !== '');
    const page = all.slice(0, pageSize);
    const last = page[page.length - 1];
    return { actors: page, nextPageToken: more && last ? Buffer.from(refKey(last.ref)).toString('base64url') : '' };
  }

  // --- the owner's side ---------------------------------------------------------------------------

  onMessage(): void {}

  async onRequest(link: Link, method: string, body: unknown): Promise<unknown> {
    try {
      return await this.onOwnerRequest(link, method, body);
    } catch (err) {
      // The actor waits on the hand-off barrier here and its clearance is being asked for: answering
      // now would send the caller into its backoff just before the actor may activate.
      const ref = (body as { ref?: ActorRef } | null)?.ref;
      const cleared = retryable(err) && ref ? this.placement.clearance(ref) : undefined;
      if (!cleared) throw err;
      await Promise.race([cleared, this.sleep(CLEARANCE_WAIT_MS)]);
      return await this.onOwnerRequest(link, method, body);
    }
  }

  private async onOwnerRequest(_link: Link, method: string, body: unknown): Promise<unknown> {
    const b = body as Record<string, any>;
    const ref = (): ActorRef => validateRef(b.ref);
    switch (method) {
      case 'actor.tell':
        return this.local.tell(ref(), b.payload, b.opts ?? {});
      case 'actor.ask':
        return this.local.ask(ref(), b.payload, b.timeoutMs, b.from ? validateRef(b.from) : undefined);
      case 'actor.spawn':
        return this.local.spawn(ref(), b.init ?? undefined, b.parent ?? undefined);
      case 'actor.stop':
        await this.local.stop(ref());
        return null;
      case 'actor.describe':
        return this.local.describe(ref());
      case 'actor.deadLetters':
        return this.local.deadLetters(ref());
      case 'actor.redrive':
        return this.local.redrive(ref(), b.seqs);
      case 'actor.list':
        return this.local.list(b);
      default:
        throw new InvalidArgumentError(`unknown method ${method}`);
    }
  }
}
