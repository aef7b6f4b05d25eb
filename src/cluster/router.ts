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
 * once, gets its own (empty) id back and no duplicate flag. A tell this node owns is enqueued here
 * without one (an id costs a dedup entry, written and replicated): a local tell that failed before
 * its actor took it did not happen and is retried, but one taken whose write then failed
 * (UnconfirmedMessageError) may have, and goes back to the caller instead; so does such a local ask.
 * A forwarded ask carries no id: one whose answer was lost is asked again (see docs/cluster.md).
 *
 * Node-to-node methods (prefix "actor."), answered by the owner's local ActorSystem only - a node
 * never forwards a forwarded call, so a call makes at most one network hop per attempt:
 *   actor.spawn, actor.tell, actor.ask, actor.stop, actor.describe, actor.deadLetters,
 *   actor.redrive, actor.list (the owned actors of that node), and actor.tells { items: the bodies
 *   of several actor.tell } -> [{ ack } | { code, error }] in the same order (see forwardTell); to a
 *   peer whose hello says rawTells, actor.tells request and answer go in tells-codec.ts's binary form
 */
import type { ActorService, TellOptions } from '../runtime/actor-service.js';
import { compareRefKeys, type ActorDescription, type ActorSystem, type DeadLetter } from '../runtime/runtime.js';
import type { TellAck } from '../runtime/envelope.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { Backoff } from '../runtime/backoff.js';
import { refKey, validateRef, type ActorRef } from '../runtime/ref.js';
import { randomUUID } from 'node:crypto';
import { CeiError, InvalidArgumentError, UnavailableError, UnconfirmedMessageError } from '../errors.js';
import { errorForPeer, remoteError } from './transport-core.js';
import { decodeForwardedTells, decodeTellOutcomes, encodeForwardedTells, encodeTellOutcomes, type ForwardedTell, type TellOutcome } from './tells-codec.js';
import type { ClusterOptions } from './cluster-options.js';
import type { RingPlacement } from './ring-placement.js';
import type { Link, Transport } from './transport.js';
import type { SubHandler } from './membership-service.js';

const RETRY = { initialMs: 5, maxMs: 250, multiplier: 2, jitter: 0.2 };
/** The longest the owner holds a forwarded call that met the hand-off barrier while its clearance is asked for. */
const CLEARANCE_WAIT_MS = 250;
/** A call retrying for this long is logged once, with the error it keeps meeting. */
const SLOW_ROUTE_MS = 3_000;

/**
 * Tells one JSON actor.tells request carries at most: at the default --max-payload (1 MiB) a request
 * stays within half the peer link's 64 MiB frame limit.
 */
const FORWARD_BATCH_TELLS = 32;
/**
 * A binary request (tells-codec.ts) closes at this many tells, or once its payload texts reach
 * FORWARD_BATCH_TEXT code units: a TellStream slice starts up to 256 tells a macrotask, and one
 * request for all of an owner's costs the link one frame and the owner one decode, not eight.
 */
const FORWARD_BATCH_RAW_TELLS = 512;
const FORWARD_BATCH_TEXT = 8 * 1024 * 1024;
/** What an owner accepts in one actor.tells request (a guard; senders send at most FORWARD_BATCH_RAW_TELLS). */
const MAX_FORWARDED_TELLS = 1_000;

/** A tell on its way to its owner: its options still carry the payload's text, if the caller had it. */
interface ForwardItem {
  ref: ActorRef;
  payload: unknown;
  opts: TellOptions;
}

interface ForwardBatch {
  items: ForwardItem[];
  /** The binary request's tells (to a rawTells peer), with `text` code units of payloads in all. */
  tells: ForwardedTell[];
  text: number;
  waiters: Array<{ resolve: (ack: TellAck) => void; reject: (err: unknown) => void }>;
  timeoutMs: number;
}

function batchFull(link: Link, b: ForwardBatch): boolean {
  return link.peer.rawTells ? b.tells.length >= FORWARD_BATCH_RAW_TELLS || b.text >= FORWARD_BATCH_TEXT : b.items.length >= FORWARD_BATCH_TELLS;
}

function retryable(err: unknown): boolean {
  return err instanceof CeiError && err.retryable;
}

/**
 * A message taken here without an id whose write then failed may have been handled: sending it
 * again could apply it twice. The caller hears that its outcome is unknown, as from a lost answer.
 */
function notRetried(err: unknown): never {
  if (err instanceof UnconfirmedMessageError && err.retryable) throw new CeiError(err.code, err.message, { cause: err, retryable: false });
  throw err;
}

/**
 * A tell's options as they go to another node in JSON: without the payload's text, which the owner
 * makes again from the payload it receives (a peer's text is not trusted to match its payload). In
 * binary the text is all that goes, and the owner parses the payload from it.
 */
function forwarded(opts: TellOptions): TellOptions {
  if (opts.payloadJson === undefined) return opts;
  const { payloadJson: _text, ...rest } = opts;
  return rest;
}

/** The options a binary actor.tells request gave one tell. */
function tellOptions(t: ForwardedTell): TellOptions {
  const opts: TellOptions = {};
  if (t.messageId !== undefined) opts.messageId = t.messageId;
  if (t.from !== undefined) opts.from = t.from;
  return opts;
}

export class ClusterRouter implements ActorService, SubHandler {
  /** Tells to forward at the end of this macrotask, per owner link (forwardTell). */
  private readonly forwards = new Map<Link, ForwardBatch>();
  /** Calls waiting out a retry delay, woken early by the next ring change (ringsChanged). */
  private readonly retryWaiters = new Set<() => void>();

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

  /** Call on every ring change: calls waiting to retry try again now, at the owner the new rings name. */
  ringsChanged(): void {
    const waiters = [...this.retryWaiters];
    this.retryWaiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves after `ms`, or at the next ring change if that comes first. */
  private retryDelay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.retryWaiters.delete(wake);
        timer.cancel();
        resolve();
      };
      const timer = this.clock.setTimer(ms, wake);
      this.retryWaiters.add(wake);
    });
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
        const timeoutMs = Math.max(1, Math.min(this.options.requestTimeoutMs, deadline - this.clock.now()));
        if (method === 'actor.tell') return (await this.forwardTell(link, request as ForwardItem, timeoutMs)) as T;
        return await link.request<T>(method, request, timeoutMs);
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
      // An actor waiting on the hand-off barrier here may be cleared for activation any moment, and
      // the owner that failed (a dead node's link, say) may be replaced by the next rings: after a
      // fail-over the call goes on as soon as they come, not up to a retry delay (250 ms) later.
      const cleared = this.placement.clearance(ref);
      await (cleared ? Promise.race([cleared, this.retryDelay(delay)]) : this.retryDelay(delay));
    }
  }

  /**
   * Forwards a tell with the others this macrotask forwards to the same owner, as one actor.tells
   * request: a client streaming tells to a node that owns few of them would otherwise cost the pair
   * a request, an answer and their JSON per tell. Each tell still settles on its own (its ack, or
   * the error its owner gave it), so the caller's retries are per tell as before.
   */
  private forwardTell(link: Link, request: ForwardItem, timeoutMs: number): Promise<TellAck> {
    let batch = this.forwards.get(link);
    if (!batch || batchFull(link, batch)) {
      // A full batch leaves on its own setImmediate all the same; later tells start the next one.
      const fresh: ForwardBatch = (batch = { items: [], tells: [], text: 0, waiters: [], timeoutMs });
      this.forwards.set(link, fresh);
      setImmediate(() => {
        if (this.forwards.get(link) === fresh) this.forwards.delete(link);
        this.sendForwards(link, fresh);
      });
    }
    // The batch's request may take no longer than its most hurried tell may wait.
    batch.timeoutMs = Math.min(batch.timeoutMs, timeoutMs);
    if (link.peer.rawTells) {
      const { ref, payload, opts } = request;
      const payloadJson = opts.payloadJson ?? JSON.stringify(payload) ?? '';
      batch.tells.push({ ref, payloadJson, messageId: opts.messageId, from: opts.from });
      batch.text += payloadJson.length;
    } else {
      batch.items.push(request);
    }
    return new Promise<TellAck>((resolve, reject) => batch.waiters.push({ resolve, reject }));
  }

  private sendForwards(link: Link, batch: ForwardBatch): void {
    const { items, tells, waiters, timeoutMs } = batch;
    if (tells.length > 0) {
      this.settleForwards(waiters, link.request<unknown>('actor.tells', encodeForwardedTells(tells), timeoutMs).then((answer) => {
        if (!(answer instanceof Uint8Array)) throw new CeiError('INTERNAL', 'actor.tells answered in JSON to a binary request');
        return decodeTellOutcomes(answer);
      }));
      return;
    }
    const bodies = items.map(({ ref, payload, opts }) => ({ ref, payload, opts: forwarded(opts) }));
    if (items.length === 1) {
      link.request<TellAck>('actor.tell', bodies[0], timeoutMs).then(waiters[0]!.resolve, waiters[0]!.reject);
      return;
    }
    this.settleForwards(waiters, link.request<TellOutcome[]>('actor.tells', { items: bodies }, timeoutMs));
  }

  /** Settles each forwarded tell with its outcome, or all of them with the request's error. */
  private settleForwards(waiters: ForwardBatch['waiters'], answered: Promise<TellOutcome[]>): void {
    answered.then(
      (outcomes) => {
        if (!Array.isArray(outcomes) || outcomes.length !== waiters.length) {
          const err = new CeiError('INTERNAL', `actor.tells answered ${Array.isArray(outcomes) ? outcomes.length : 'no list of'} outcomes for ${waiters.length} tells`);
          for (const w of waiters) w.reject(err);
          return;
        }
        outcomes.forEach((o, i) => (o.ack ? waiters[i]!.resolve(o.ack) : waiters[i]!.reject(remoteError(o.code ?? 'INTERNAL', o.error ?? 'no ack and no error'))));
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }

  spawn(ref: ActorRef, init?: unknown, parent?: string): Promise<{ created: boolean; node: string }> {
    return this.route(ref, 'actor.spawn', { ref, init, parent }, () => this.local.spawn(ref, init, parent));
  }

  tell(ref: ActorRef, payload: unknown, opts: TellOptions = {}): Promise<TellAck> {
    // Most tells of a client that routes by owner: this node owns the actor. The first attempt goes
    // straight to the runtime (no retry loop, no closures for forwarding); a retryable failure takes
    // the routed path, which retries it as route() would have.
    if (this.placement.ownerOf(ref) === this.placement.selfId) {
      return this.local.tell(ref, payload, opts).catch((err: unknown) => {
        if (!retryable(err) || this.local.isFenced) throw err;
        if (!opts.messageId && err instanceof UnconfirmedMessageError) notRetried(err);
        return this.routedTell(ref, payload, opts);
      });
    }
    return this.routedTell(ref, payload, opts);
  }

  private routedTell(ref: ActorRef, payload: unknown, opts: TellOptions): Promise<TellAck> {
    if (opts.messageId) return this.route(ref, 'actor.tell', { ref, payload, opts }, () => this.local.tell(ref, payload, opts));
    // No id of the caller's: one of ours from the first forward on, for every attempt after it too.
    let routed: TellOptions | undefined;
    const forward = (): ForwardItem => ({ ref, payload, opts: (routed ??= { ...opts, messageId: `route:${randomUUID()}` }) });
    const here = (): Promise<TellAck> => {
      const told = this.local.tell(ref, payload, routed ?? opts);
      return routed === undefined ? told.catch(notRetried) : told;
    };
    return this.route(ref, 'actor.tell', forward, here).then((ack) =>
      routed === undefined ? ack : { ...ack, messageId: opts.messageId ?? '', duplicate: false },
    );
  }

  ask<T = unknown>(ref: ActorRef, payload: unknown, timeoutMs?: number, from?: ActorRef): Promise<T> {
    const ms = timeoutMs && timeoutMs > 0 ? timeoutMs : this.local.options.defaultAskTimeoutMs;
    return this.route<T>(ref, 'actor.ask', { ref, payload, timeoutMs: ms, from }, () => this.local.ask<T>(ref, payload, ms, from).catch(notRetried), ms);
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

  onRequest(link: Link, method: string, body: unknown): Promise<unknown> {
    return this.withClearance((body as { ref?: ActorRef } | null)?.ref, () => this.onOwnerRequest(link, method, body));
  }

  /** Runs an owner's call once more if it failed while `ref` waits on the hand-off barrier. */
  private async withClearance<T>(ref: ActorRef | undefined, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      // The actor waits on the hand-off barrier here and its clearance is being asked for: answering
      // now would send the caller into its backoff just before the actor may activate.
      const cleared = retryable(err) && ref ? this.placement.clearance(ref) : undefined;
      if (!cleared) throw err;
      await Promise.race([cleared, this.sleep(CLEARANCE_WAIT_MS)]);
      return await call();
    }
  }

  /** A tell of a binary actor.tells request: its payload is parsed from the text it came as, which the owner then stores. */
  private tellForwarded(t: ForwardedTell): Promise<TellAck> {
    const ref = validateRef(t.ref);
    const opts = tellOptions(t);
    let payload: unknown;
    if (t.payloadJson !== '') {
      try {
        payload = JSON.parse(t.payloadJson);
      } catch {
        throw new InvalidArgumentError(`the payload of a forwarded tell to ${refKey(ref)} is not JSON`);
      }
      opts.payloadJson = t.payloadJson;
    }
    return this.withClearance(ref, () => this.local.tell(ref, payload, opts));
  }

  private async onOwnerRequest(link: Link, method: string, body: unknown): Promise<unknown> {
    const b = body as Record<string, any>;
    const ref = (): ActorRef => validateRef(b.ref);
    switch (method) {
      case 'actor.tells': {
        // In binary from peers whose hello says rawTells, in JSON from older ones; answered the same way.
        const binary = body instanceof Uint8Array;
        const items: unknown = binary ? decodeForwardedTells(body) : b.items;
        if (!Array.isArray(items) || items.length > MAX_FORWARDED_TELLS) throw new InvalidArgumentError(`actor.tells takes a list of at most ${MAX_FORWARDED_TELLS} tells`);
        const settled = await Promise.allSettled(
          binary ? (items as ForwardedTell[]).map(async (t) => this.tellForwarded(t)) : items.map((item) => this.onRequest(link, 'actor.tell', item) as Promise<TellAck>),
        );
        const outcomes = settled.map((r): TellOutcome => (r.status === 'fulfilled' ? { ack: r.value } : errorForPeer(r.reason)));
        return binary ? encodeTellOutcomes(outcomes) : outcomes;
      }
      case 'actor.tell':
        return this.local.tell(ref(), b.payload, forwarded(b.opts ?? {}));
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
