/**
 * What both transports share: a Link over an ordered duplex of frames (a Wire), with request
 * bookkeeping, the hello exchange, the one-link-per-pair rule and the dialers that keep links up.
 * transport-grpc.ts and transport-memory.ts only supply Wires (a gRPC `Link` call, an in-process
 * pipe), so both carry exactly the same semantics and a unit test on the in-memory transport
 * exercises the code the real one runs.
 *
 * Life of a link, on each end:
 *
 *   hello --(hellos exchanged, kept by the pair rule)--> up --(drop | close | replaced)--> closed
 *        \--(hello timeout, bad hello, self, duplicate, wire closed)--------------------> closed
 *
 * The dialer sends its hello first; the accepting end answers with its own once it has read the
 * dialer's, so a dialer never sees frames before the answering hello. The handler hears of a link
 * only once it is up (`onLinkUp`), and then exactly once that it went down (`onLinkDown`).
 *
 * Choosing between two links of one pair (`prefer`), the same decision on both ends:
 *  1. a link to a newer incarnation of the peer wins (the other is a leftover of a dead process and
 *     only exists on this end);
 *  2. else a link dialed by the node with the smaller id wins over one dialed by the other node;
 *  3. else (both dialed by the same node, e.g. a redial while the old link is not yet seen dead here,
 *     or two addresses of one node) the later dial wins: hellos carry the dialer's link nonce.
 * A losing link that was never announced is closed quietly; a losing link that was up is reported
 * down just before the winner is reported up. A dialer whose link lost, or whose address turns out
 * to be served by a peer already linked, waits until no link to that peer is up and then redials.
 * So when both nodes dial each other at once, the handlers may see the larger id's link come up and
 * go down again right before the kept one comes up.
 *
 * Handler calls come from wire events on the event loop, with these exceptions made on purpose so
 * that the caller sees the effect at once: `link.close()` and `stop()` report the links they close
 * (`onLinkDown`) before they return, and so do a MemoryNetwork's cut, isolate and kill.
 * Handlers may call back into the transport from any callback. Time is read and timers are set only
 * through the injected Clock (hello timeouts, request timeouts, redial backoff).
 */
import {
  CeiError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
  type ErrorCode,
} from '../errors.js';
import { Backoff, type BackoffOptions } from '../runtime/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../runtime/clock.js';
import { silentLogger, type Logger } from '../runtime/logger.js';
import { MEMBER_ROLES, type MemberRole } from './membership.js';
import type { Link, LinkHandler, PeerInfo, Transport } from './transport.js';

// --- options ---------------------------------------------------------------------------------------

export interface TransportOptions {
  clock: Clock;
  log: Logger;
  /** Delays between dial attempts to one address (reset once a link to it stayed up for `maxMs`). */
  reconnect: BackoffOptions;
  /** A link whose hello has not arrived this long after it was opened is closed (and redialed). */
  helloTimeoutMs: number;
}

/** Redial quickly after a drop (a restarted node serves within ~0.3 s), and at least every 2 s. */
export const RECONNECT_DEFAULTS: Readonly<BackoffOptions> = Object.freeze({ initialMs: 50, maxMs: 2_000, multiplier: 2, jitter: 0.2 });

export const TRANSPORT_DEFAULTS: Readonly<TransportOptions> = Object.freeze({
  clock: systemClock,
  log: silentLogger,
  reconnect: RECONNECT_DEFAULTS,
  helloTimeoutMs: 5_000,
});

/** Short intervals for tests: redials within milliseconds, so a healed link comes back at once. */
export const TRANSPORT_TEST_PRESET: Readonly<TransportOptions> = Object.freeze({
  ...TRANSPORT_DEFAULTS,
  reconnect: Object.freeze({ initialMs: 2, maxMs: 50, multiplier: 2, jitter: 0.2 }),
  helloTimeoutMs: 2_000,
});

/** The defaults with `options` laid over them (undefined fields keep the default). */
export function transportOptions(options: Partial<TransportOptions> = {}): TransportOptions {
  const merged: TransportOptions = { ...TRANSPORT_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  if (!(merged.helloTimeoutMs > 0)) throw new RangeError(`helloTimeoutMs must be positive, got ${merged.helloTimeoutMs}`);
  new Backoff(merged.reconnect); // validates
  return merged;
}

// --- frames and wires ------------------------------------------------------------------------------

/** The frame kinds of proto/cei/v1/peer.proto. */
export type FrameKind = 'hello' | 'msg' | 'req' | 'res';

/** One PeerFrame with its body decoded. `kind` is a string as received: unknown kinds are ignored. */
export interface Frame {
  kind: string;
  /** hello: the dialer's link nonce; req/res: the request id; msg: 0. */
  id: number;
  method: string;
  /** The decoded JSON body; undefined when the frame carried none. */
  body: unknown;
  ok: boolean;
  errorCode: string;
  error: string;
}

/**
 * One end of an ordered, reliable duplex of frames (a gRPC Link call, an in-process pipe). Frames
 * written are delivered in order until the wire closes.
 */
export interface Wire {
  /**
   * Queues `frame`; never blocks, and is a no-op once the wire is closed. Throws (before queueing
   * anything) only when the body cannot be serialized as JSON. A wire that cannot keep up may close
   * itself (reporting an error to its sink) rather than buffer without bound.
   */
  write(frame: Frame): void;
  /** Ends this side: frames written before are still delivered, then the other end sees the end. Idempotent. */
  end(): void;
  /** Breaks the wire at once (the other end sees an error; undelivered frames are lost). Idempotent. */
  abort(reason: string): void;
}

/** What a wire reports to. After `closed` a wire reports nothing more. */
export interface WireSink {
  frame(frame: Frame): void;
  /** The wire is done: `error` when it broke, undefined when the other side ended it. */
  closed(error?: Error): void;
}

function makeFrame(kind: FrameKind, id: number, method: string, body: unknown): Frame {
  return { kind, id, method, body, ok: kind === 'res', errorCode: '', error: '' };
}

// --- errors ----------------------------------------------------------------------------------------

/**
 * An error as a peer's answer carries it, which remoteError turns back: its code (INTERNAL for one
 * that is not a CeiError) and its message.
 */
export function errorForPeer(err: unknown): { code: ErrorCode; error: string } {
  return { code: err instanceof CeiError ? err.code : 'INTERNAL', error: errorMessage(err) };
}

/**
 * The CeiError a request rejects with for a remote error `code`: the matching subclass where one
 * exists, so `retryable` is right on this side too. An unknown code is INTERNAL.
 */
export function remoteError(code: string, message: string): CeiError {
  switch (code as ErrorCode) {
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(message);
    case 'NOT_FOUND':
      return new NotFoundError(message);
    case 'DEADLINE_EXCEEDED':
      return new DeadlineExceededError(message);
    case 'UNAVAILABLE':
      return new UnavailableError(message);
    case 'FAILED_PRECONDITION':
      return new FailedPreconditionError(message);
    case 'DATA_LOSS':
      return new DataLossError(message);
    case 'RESOURCE_EXHAUSTED':
      return new CeiError('RESOURCE_EXHAUSTED', message, { retryable: true });
    case 'ALREADY_EXISTS':
    case 'INTERNAL':
      return new CeiError(code as ErrorCode, message);
    default:
      return new CeiError('INTERNAL', `${message} (remote error code ${JSON.stringify(code)})`);
  }
}

/** PeerInfo from a hello body, or undefined when it is not one. */
export function parsePeerInfo(body: unknown): PeerInfo | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { id, address, role, incarnation } = body as Record<string, unknown>;
  if (typeof id !== 'string' || id === '' || typeof address !== 'string') return undefined;
  if (!MEMBER_ROLES.includes(role as MemberRole)) return undefined;
  if (typeof incarnation !== 'number' || !Number.isSafeInteger(incarnation) || incarnation < 0) return undefined;
  const { rawBodies, rawTells } = body as Record<string, unknown>;
  const info: { -readonly [K in keyof PeerInfo]: PeerInfo[K] } = { id, address, role: role as MemberRole, incarnation };
  if (rawBodies === true) info.rawBodies = true;
  if (rawTells === true) info.rawTells = true;
  return Object.freeze(info);
}

// --- links -----------------------------------------------------------------------------------------

type LinkState = 'hello' | 'up' | 'closed';

interface PendingRequest {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: TimerHandle | undefined;
}

/** A dialer keeps one address linked: at most one attempt or link of its own at a time. */
interface Dialer {
  readonly address: string;
  readonly backoff: Backoff;
  /** Its current attempt or link. */
  link: PeerLink | undefined;
  /** A redial waiting for its backoff delay. */
  timer: TimerHandle | undefined;
  /** The id of the node at `address`, as its last hello said. */
  peerId: string | undefined;
  /** Waiting while another link to `peerId` is up. */
  covered: boolean;
  /** The address is this node's own: never dialed again. */
  self: boolean;
}

/** The shared side of TransportCore that links call back into. */
interface LinkHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly handler: LinkHandler;
  helloReceived(link: PeerLink, frame: Frame): void;
  /** Closes `link` (once); `abort` breaks its wire instead of ending it gracefully. */
  linkClosed(link: PeerLink, reason: string, abort?: boolean): void;
}

const NO_PEER: PeerInfo = Object.freeze({ id: '?', address: '?', role: 'worker', incarnation: 0 });

/**
 * A Link over one Wire. The hot paths (`send`, `frame`) do a state check, one object and one wire
 * write or handler call per frame; requests add one map entry and one timer each. Exported for the
 * transports and their tests; members beyond Link's are the transports' bookkeeping, not API.
 */
export class PeerLink implements Link, WireSink {
  peer: PeerInfo = NO_PEER;
  state: LinkState = 'hello';
  wire!: Wire;
  /** The handler was told this link is up (so it must be told it went down). */
  announced = false;
  /** Clock time the link came up, 0 before. */
  upAt = 0;
  helloTimer: TimerHandle | undefined;
  private nextRequestId = 1;
  private readonly pending = new Map<number, PendingRequest>();

  constructor(
    private readonly host: LinkHost,
    /** 'out' when this node dialed. */
    readonly direction: 'in' | 'out',
    /** The dialer's link nonce (ours for 'out', from the dialer's hello for 'in'). */
    public nonce: number,
    readonly dialer: Dialer | undefined,
  ) {}

  get open(): boolean {
    return this.state !== 'closed';
  }

  /** Requests sent and not yet answered. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  send(method: string, body: unknown): void {
    if (this.state !== 'up') return;
    this.wire.write(makeFrame('msg', 0, method, body));
  }

  request<T = unknown>(method: string, body: unknown, timeoutMs: number): Promise<T> {
    if (this.state !== 'up') return Promise.reject(new UnavailableError(`link to ${this.peer.id} is closed`));
    const id = this.nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      const p: PendingRequest = { resolve: resolve as (value: unknown) => void, reject, timer: undefined };
      // In the map before the write: a write that overflows drops the link, which rejects it.
      this.pending.set(id, p);
      try {
        this.wire.write(makeFrame('req', id, method, body));
      } catch (err) {
        this.pending.delete(id);
        reject(new InvalidArgumentError(`request ${method}: the body is not JSON-serializable: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      if (this.pending.has(id)) {
        p.timer = this.host.clock.setTimer(timeoutMs, () => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          reject(new DeadlineExceededError(`request ${method} to ${this.peer.id}: no answer within ${timeoutMs} ms`));
        });
      }
    });
  }

  close(): void {
    this.host.linkClosed(this, 'closed locally');
  }

  // --- WireSink ---

  frame(f: Frame): void {
    if (this.state === 'up') {
      switch (f.kind) {
        case 'msg':
          try {
            this.host.handler.onMessage(this, f.method, f.body);
          } catch (err) {
            this.host.log.error({ err, peer: this.peer.id, method: f.method }, 'peer message handler threw');
          }
          return;
        case 'req':
          this.answer(f.id, f.method, f.body);
          return;
        case 'res':
          this.settle(f);
          return;
        default:
          // A kind from a newer peer, or a second hello: nothing this version acts on.
          this.host.log.debug({ peer: this.peer.id, kind: f.kind }, 'ignoring peer frame of unexpected kind');
          return;
      }
    }
    if (this.state === 'hello') {
      if (f.kind === 'hello') this.host.helloReceived(this, f);
      else this.host.linkClosed(this, `closed: a ${JSON.stringify(f.kind)} frame came before the hello`, true);
    }
  }

  closed(error?: Error): void {
    this.host.linkClosed(this, error ? `dropped: ${error.message}` : 'ended by the peer');
  }

  // --- internals ---

  /** Ends the link once: rejects its requests and ends (or aborts) the wire. False when it was closed already. */
  shutdown(reason: string, abort: boolean): boolean {
    if (this.state === 'closed') return false;
    this.state = 'closed';
    this.helloTimer?.cancel();
    try {
      if (abort) this.wire.abort(reason);
      else this.wire.end();
    } catch (err) {
      this.host.log.debug({ err }, 'ending a peer wire failed');
    }
    if (this.pending.size > 0) {
      const err = new UnavailableError(`link to ${this.peer.id} ${reason}`);
      const pending = [...this.pending.values()];
      this.pending.clear();
      for (const p of pending) {
        p.timer?.cancel();
        p.reject(err);
      }
    }
    return true;
  }

  private settle(f: Frame): void {
    const p = this.pending.get(f.id);
    if (p === undefined) return; // timed out already
    this.pending.delete(f.id);
    p.timer?.cancel();
    if (f.ok) p.resolve(f.body);
    else p.reject(remoteError(f.errorCode, f.error));
  }

  private answer(id: number, method: string, body: unknown): void {
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(this.host.handler.onRequest(this, method, body));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => this.respond(id, method, value),
      (err: unknown) => this.respondError(id, method, err),
    );
  }

  private respond(id: number, method: string, value: unknown): void {
    if (this.state !== 'up') return;
    try {
      this.wire.write(makeFrame('res', id, '', value));
    } catch (err) {
      this.respondError(id, method, new CeiError('INTERNAL', `the answer to ${method} is not JSON-serializable: ${errorMessage(err)}`));
    }
  }

  private respondError(id: number, method: string, err: unknown): void {
    if (this.state !== 'up') return;
    if (!(err instanceof CeiError)) this.host.log.warn({ err, peer: this.peer.id, method }, 'peer request handler failed with an error that is not a CeiError');
    const { code, error } = errorForPeer(err);
    const f = makeFrame('res', id, '', undefined);
    f.ok = false;
    f.errorCode = code;
    f.error = error;
    this.wire.write(f);
  }
}

// --- the transport ---------------------------------------------------------------------------------

type TransportState = 'new' | 'started' | 'stopped';

/**
 * A Transport over Wires that a subclass opens (`openWire`) and accepts (`accept`). Not re-entrant
 * across transports: each node has its own.
 */
export abstract class TransportCore implements Transport, LinkHost {
  readonly clock: Clock;
  readonly log: Logger;
  protected readonly options: TransportOptions;
  private state: TransportState = 'new';
  private selfInfo: PeerInfo | undefined;
  private linkHandler: LinkHandler | undefined;
  /** The up link per peer id. */
  private readonly up = new Map<string, PeerLink>();
  /** Links still exchanging hellos. */
  private readonly opening = new Set<PeerLink>();
  private readonly dialers = new Map<string, Dialer>();
  private lastNonce = 0;

  constructor(options: Partial<TransportOptions> = {}) {
    this.options = transportOptions(options);
    this.clock = this.options.clock;
    this.log = this.options.log;
  }

  /** Opens a wire to `address` that reports to `sink`; a failure to connect is reported as `sink.closed(error)`. */
  protected abstract openWire(address: string, sink: WireSink): Wire;
  /** Called once by `stop` after every link was closed. */
  protected abstract stopped(): Promise<void>;
  /** Called when `address` is no longer dialed (forget), to release what was kept for it. */
  protected forgotten(_address: string): void {}

  get self(): PeerInfo {
    if (!this.selfInfo) throw new FailedPreconditionError('transport not started');
    return this.selfInfo;
  }

  get handler(): LinkHandler {
    if (!this.linkHandler) throw new FailedPreconditionError('transport not started');
    return this.linkHandler;
  }

  get started(): boolean {
    return this.state === 'started';
  }

  start(self: PeerInfo, handler: LinkHandler): void {
    if (this.state !== 'new') throw new FailedPreconditionError(`transport already ${this.state === 'started' ? 'started' : 'stopped'}`);
    if (!parsePeerInfo(self)) throw new InvalidArgumentError(`not a valid PeerInfo: ${JSON.stringify(self)}`);
    // Both wires (gRPC, memory) carry raw bodies, and this node's router reads binary actor.tells
    // requests: the hello says so.
    this.selfInfo = Object.freeze({ id: self.id, address: self.address, role: self.role, incarnation: self.incarnation, rawBodies: true, rawTells: true });
    this.linkHandler = handler;
    this.state = 'started';
  }

  dial(address: string): void {
    if (this.state === 'new') throw new FailedPreconditionError('transport not started: call start before dial');
    if (this.state === 'stopped' || this.dialers.has(address)) return;
    const d: Dialer = {
      address,
      backoff: new Backoff(this.options.reconnect),
      link: undefined,
      timer: undefined,
      peerId: undefined,
      covered: false,
      self: false,
    };
    this.dialers.set(address, d);
    this.attempt(d);
  }

  forget(address: string): void {
    const d = this.dialers.get(address);
    if (!d) return;
    this.dialers.delete(address);
    d.timer?.cancel();
    d.timer = undefined;
    // An attempt in progress is abandoned; a link that is up stays up (it may be the peer's too).
    if (d.link && d.link.state === 'hello') this.linkClosed(d.link, 'abandoned: address forgotten');
    this.forgotten(address);
  }

  links(): Link[] {
    return [...this.up.values()];
  }

  link(peerId: string): Link | undefined {
    return this.up.get(peerId);
  }

  /** Addresses being dialed (for status pages and tests). */
  dialing(): string[] {
    return [...this.dialers.keys()];
  }

  /** Closes every link (each up link is reported down) and stops dialing and accepting. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasStarted = this.state === 'started';
    this.state = 'stopped';
    for (const d of this.dialers.values()) d.timer?.cancel();
    this.dialers.clear();
    for (const link of [...this.opening]) this.linkClosed(link, 'closed: transport stopped');
    for (const link of [...this.up.values()]) this.linkClosed(link, 'closed: transport stopped');
    if (wasStarted) await this.stopped();
  }

  /**
   * Takes an inbound wire: `wireFor` makes it, reporting to the sink it is given. Returns false (and
   * makes nothing) when this transport is not accepting; the caller then refuses the connection.
   */
  protected accept(wireFor: (sink: WireSink) => Wire): boolean {
    if (this.state !== 'started') return false;
    const link = new PeerLink(this, 'in', 0, undefined);
    this.opening.add(link);
    link.wire = wireFor(link);
    this.armHelloTimer(link);
    return true;
  }

  // --- LinkHost ---

  helloReceived(link: PeerLink, f: Frame): void {
    const peer = parsePeerInfo(f.body);
    if (!peer) {
      this.log.warn({ direction: link.direction, body: f.body }, 'peer link: bad hello');
      this.linkClosed(link, 'closed: bad hello', true);
      return;
    }
    link.peer = peer;
    link.helloTimer?.cancel();
    const self = this.self;
    if (link.direction === 'in') {
      link.nonce = f.id;
      link.wire.write(makeFrame('hello', f.id, '', self));
    }
    if (peer.id === self.id) {
      // Our own address among the seeds: both ends of this link are us.
      if (link.dialer) {
        link.dialer.self = true;
        this.log.debug({ address: link.dialer.address }, 'peer link: address is this node; not dialing it');
      }
      this.linkClosed(link, 'closed: it leads to this node itself');
      return;
    }
    if (link.dialer) link.dialer.peerId = peer.id;
    const existing = this.up.get(peer.id);
    if (existing && !this.prefer(link, existing)) {
      this.linkClosed(link, `closed: a link to ${peer.id} is up already`);
      return;
    }
    this.opening.delete(link);
    link.state = 'up';
    link.upAt = this.clock.now();
    this.up.set(peer.id, link);
    // Registered before the old link goes, so dialers covered by the old one stay covered.
    if (existing) this.linkClosed(existing, `closed: replaced by a link dialed by ${link.direction === 'out' ? self.id : peer.id}`);
    if (link.state !== 'up') return; // closed by the handler of the old link's onLinkDown
    this.log.debug({ peer: peer.id, address: peer.address, direction: link.direction }, 'peer link up');
    link.announced = true;
    try {
      this.handler.onLinkUp(link);
    } catch (err) {
      this.log.error({ err, peer: peer.id }, 'onLinkUp handler threw');
    }
  }

  linkClosed(link: PeerLink, reason: string, abort = false): void {
    if (!link.shutdown(reason, abort)) return;
    this.opening.delete(link);
    const peerId = link.peer.id;
    const registered = this.up.get(peerId) === link;
    if (registered) this.up.delete(peerId);
    if (link.announced) {
      this.log.debug({ peer: peerId, reason }, 'peer link down');
      try {
        this.handler.onLinkDown(link);
      } catch (err) {
        this.log.error({ err, peer: peerId }, 'onLinkDown handler threw');
      }
    }
    const d = link.dialer;
    if (d && d.link === link) {
      d.link = undefined;
      if (link.peer === NO_PEER) this.log.debug({ address: d.address, reason }, 'peer link attempt failed');
      // A link that stayed up a while earns a quick redial; one that keeps failing backs off.
      if (link.upAt > 0 && this.clock.now() - link.upAt >= this.options.reconnect.maxMs) d.backoff.reset();
      this.schedule(d);
    }
    if (registered && !this.up.has(peerId)) {
      for (const other of this.dialers.values()) if (other.covered && other !== d) this.schedule(other);
    }
  }

  // --- internals ---

  /** True when `a` is to be kept over `b`, two links to the same peer: the same answer on both ends. */
  private prefer(a: PeerLink, b: PeerLink): boolean {
    if (a.peer.incarnation !== b.peer.incarnation) return a.peer.incarnation > b.peer.incarnation;
    if (a.direction !== b.direction) {
      const smaller = this.self.id < a.peer.id ? 'out' : 'in';
      return a.direction === smaller;
    }
    return a.nonce > b.nonce;
  }

  /** True when a link to the node at `d.address` is up already, so dialing it again is pointless. */
  private covers(d: Dialer): boolean {
    if (d.peerId !== undefined && this.up.has(d.peerId)) return true;
    for (const link of this.up.values()) {
      if (link.peer.address === d.address) {
        d.peerId = link.peer.id;
        return true;
      }
    }
    return false;
  }

  private current(d: Dialer): boolean {
    return this.state === 'started' && this.dialers.get(d.address) === d && !d.self && d.link === undefined;
  }

  /** Plans the next attempt of `d` after its backoff delay, or parks it while covered. */
  private schedule(d: Dialer): void {
    if (!this.current(d) || d.timer) return;
    d.covered = this.covers(d);
    if (d.covered) return;
    d.timer = this.clock.setTimer(d.backoff.next(), () => {
      d.timer = undefined;
      this.attempt(d);
    });
  }

  private attempt(d: Dialer): void {
    if (!this.current(d) || d.timer) return;
    d.covered = this.covers(d);
    if (d.covered) return;
    const link = new PeerLink(this, 'out', ++this.lastNonce, d);
    d.link = link;
    this.opening.add(link);
    try {
      link.wire = this.openWire(d.address, link);
      link.wire.write(makeFrame('hello', link.nonce, '', this.self));
    } catch (err) {
      this.log.warn({ err, address: d.address }, 'peer link: cannot dial');
      link.wire ??= { write() {}, end() {}, abort() {} };
      this.linkClosed(link, `failed: ${errorMessage(err)}`);
      return;
    }
    this.armHelloTimer(link);
  }

  private armHelloTimer(link: PeerLink): void {
    if (link.state !== 'hello') return;
    const ms = this.options.helloTimeoutMs;
    link.helloTimer = this.clock.setTimer(ms, () => this.linkClosed(link, `closed: no hello within ${ms} ms`, true));
  }
}
