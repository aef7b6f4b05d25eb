/**
 * The in-memory transport: every node of a test cluster in one process, linked through a
 * MemoryNetwork that the test controls (cut, partition, isolate, heal, kill). The link logic is
 * transport-core.ts, the same code the gRPC transport runs; only the wire is a pipe here.
 *
 *   const network = new MemoryNetwork();
 *   const t1 = network.transport({ clock });          // one per node
 *   t1.start({ id: 'n1', address: 'n1', role: 'bootstrap', incarnation: 1 }, handler);
 *   t1.dial('n2');                                    // addresses are any strings, as in PeerInfo
 *   network.cut('n1', 'n2');                          // the link drops now; no new one until healed
 *
 * Semantics, as on the real network:
 *  - Frames are delivered asynchronously (one setImmediate per burst), in order per link; bodies are
 *    JSON-encoded when sent and decoded on delivery (raw bodies copied), so a body that would not
 *    survive the wire fails here too and later changes to a sent object do not leak to the receiver.
 *  - Dialing an address nobody listens on, one that is cut off, or dialing from a killed node fails
 *    asynchronously and the dialer backs off and retries, as over gRPC.
 * Unlike the real network, `cut`, `isolate` and `kill` drop the links at once (both ends are told
 * before the call returns), so a test needs no waiting to see a partition take effect.
 */
import { NotFoundError, UnavailableError, FailedPreconditionError } from '../errors.js';
import type { LinkHandler, PeerInfo } from './transport.js';
import { TransportCore, type Frame, type TransportOptions, type Wire, type WireSink } from './transport-core.js';

export { TRANSPORT_DEFAULTS, TRANSPORT_TEST_PRESET, type TransportOptions } from './transport-core.js';

/** A frame in a pipe: its body still JSON text (undefined when it has none), or a raw body's copy. */
type QueuedFrame = Frame & { body: string | Buffer | undefined };

/** One end of a Pipe: frames written here go to the other end's sink. */
class MemoryWire implements Wire {
  other!: MemoryWire;
  sink: WireSink | undefined;
  /** Frames waiting for delivery to this end's sink. */
  private inbox: QueuedFrame[] = [];
  private scheduled = false;
  /** This side ended: writes are dropped. */
  private ended = false;
  /** The other side ended: once the inbox is delivered, this end reports closed. */
  private peerEnded = false;
  /** This end reported closed (or was broken): nothing more happens here. */
  done = false;
  private readonly drainBound = (): void => this.drain();

  constructor(
    private readonly pipe: Pipe,
    /** The address of the node at this end. */
    readonly address: string,
  ) {}

  get busy(): boolean {
    return !this.done && (this.scheduled || this.inbox.length > 0 || (this.peerEnded && this.sink !== undefined));
  }

  get hasEnded(): boolean {
    return this.ended;
  }

  write(frame: Frame): void {
    if (this.ended || this.done) return;
    const body = frame.body === undefined ? undefined : frame.body instanceof Uint8Array ? Buffer.from(frame.body) : JSON.stringify(frame.body);
    this.other.receive({ ...frame, body });
  }

  end(): void {
    if (this.ended || this.done) return;
    this.ended = true;
    this.other.peerEnded = true;
    this.other.kick();
    this.pipe.settle();
  }

  abort(reason: string): void {
    if (this.done) return;
    this.pipe.break(new UnavailableError(`connection aborted by ${this.address}: ${reason}`));
  }

  /** Starts delivering to `sink` (the accepting end, once accepted). */
  attach(sink: WireSink): void {
    this.sink = sink;
    this.kick();
  }

  /** Breaks this end: the sink hears `error` now and nothing queued is delivered. */
  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.ended = true;
    this.inbox = [];
    this.pipe.settle();
    this.sink?.closed(error);
  }

  private receive(frame: QueuedFrame): void {
    if (this.done) return;
    this.inbox.push(frame);
    this.kick();
  }

  private kick(): void {
    if (this.scheduled || this.done || this.sink === undefined) return;
    this.scheduled = true;
    setImmediate(this.drainBound);
  }

  private drain(): void {
    this.scheduled = false;
    const sink = this.sink;
    if (this.done || sink === undefined) return;
    const batch = this.inbox;
    this.inbox = [];
    for (const f of batch) {
      if (this.done) return;
      if (typeof f.body === 'string') (f as Frame).body = JSON.parse(f.body);
      sink.frame(f);
    }
    if (this.peerEnded && this.inbox.length === 0 && !this.done) {
      this.done = true;
      this.ended = true;
      this.pipe.settle();
      sink.closed();
    }
  }
}

/** A connection between two nodes: `a` is the dialer's end, `b` the acceptor's. */
class Pipe {
  readonly a: MemoryWire;
  readonly b: MemoryWire;

  constructor(
    private readonly network: MemoryNetwork,
    from: string,
    to: string,
  ) {
    this.a = new MemoryWire(this, from);
    this.b = new MemoryWire(this, to);
    this.a.other = this.b;
    this.b.other = this.a;
  }

  joins(x: string, y?: string): boolean {
    if (y === undefined) return this.a.address === x || this.b.address === x;
    return (this.a.address === x && this.b.address === y) || (this.a.address === y && this.b.address === x);
  }

  get busy(): boolean {
    return this.b.sink === undefined ? !this.a.done : this.a.busy || this.b.busy;
  }

  break(error: Error): void {
    this.network.removePipe(this);
    this.a.fail(error);
    this.b.fail(error);
  }

  /** Forgets the pipe once both ends are done. */
  settle(): void {
    if ((this.a.done || this.a.hasEnded) && (this.b.done || this.b.hasEnded)) this.network.removePipe(this);
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? JSON.stringify([a, b]) : JSON.stringify([b, a]);
}

/**
 * A network of in-memory transports, with the faults a test injects. Several networks in one
 * process are independent. Not thread-safe (there is one thread).
 */
export class MemoryNetwork {
  private readonly listeners = new Map<string, MemoryTransport>();
  private readonly killed = new WeakSet<MemoryTransport>();
  private readonly pipes = new Set<Pipe>();
  private readonly cuts = new Set<string>();
  private readonly isolated = new Set<string>();

  /** A transport for one node; it joins the network under `self.address` when started. */
  transport(options: Partial<TransportOptions> = {}): MemoryTransport {
    return new MemoryTransport(this, options);
  }

  /** Addresses of the started, live nodes. */
  addresses(): string[] {
    return [...this.listeners.keys()];
  }

  /** True when a link between `a` and `b` may exist now (neither isolated, the pair not cut). */
  reachable(a: string, b: string): boolean {
    return !this.isolated.has(a) && !this.isolated.has(b) && !this.cuts.has(pairKey(a, b));
  }

  /** Drops every link between `a` and `b` and refuses new ones until `heal(a, b)` (or `heal(a)`, `healAll()`). */
  cut(a: string, b: string): void {
    this.cuts.add(pairKey(a, b));
    this.breakWhere((p) => p.joins(a, b), `network cut between ${a} and ${b}`);
  }

  /** Cuts every pair with one node in `side` and the other in `otherSide`. */
  partition(side: readonly string[], otherSide: readonly string[]): void {
    for (const a of side) for (const b of otherSide) this.cut(a, b);
  }

  /** Drops every link of `address` and refuses new ones until `heal(address)` or `healAll()`. */
  isolate(address: string): void {
    this.isolated.add(address);
    this.breakWhere((p) => p.joins(address), `${address} is isolated`);
  }

  /**
   * `heal(a, b)` lifts the cut between `a` and `b` (an isolation of either stays); `heal(a)` lifts
   * the isolation of `a` and every cut involving it. Dialers reconnect by themselves.
   */
  heal(a: string, b?: string): void {
    if (b !== undefined) {
      this.cuts.delete(pairKey(a, b));
      return;
    }
    this.isolated.delete(a);
    for (const key of [...this.cuts]) if ((JSON.parse(key) as string[]).includes(a)) this.cuts.delete(key);
  }

  healAll(): void {
    this.cuts.clear();
    this.isolated.clear();
  }

  /**
   * The node at `address` vanishes, as if SIGKILLed: all its links drop (both ends are told), dials
   * to it fail, and its transport can never link again (its own dials fail too). The address is
   * free for a new transport: a restart is a new transport with a higher incarnation.
   */
  kill(address: string): void {
    const t = this.listeners.get(address);
    if (!t) throw new NotFoundError(`no live node listens on ${address}`);
    this.killed.add(t);
    this.listeners.delete(address);
    this.breakWhere((p) => p.joins(address), `${address} was killed`);
  }

  /**
   * Resolves once no frame is queued, no connection is being made and nothing new was sent for a
   * couple of event-loop turns (so request handlers that only await promises have answered).
   * Rejects after `maxTurns` turns of continuous traffic.
   */
  async flush(maxTurns = 100_000): Promise<void> {
    let quiet = 0;
    for (let turn = 0; turn < maxTurns; turn++) {
      let busy = false;
      for (const p of this.pipes) {
        if (p.busy) {
          busy = true;
          break;
        }
      }
      quiet = busy ? 0 : quiet + 1;
      if (quiet >= 3) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    throw new Error(`memory network still busy after ${maxTurns} event-loop turns`);
  }

  // --- for MemoryTransport ---

  /** @internal */
  claim(address: string, t: MemoryTransport): void {
    const holder = this.listeners.get(address);
    if (holder && holder !== t) throw new FailedPreconditionError(`address ${address} is in use by another node`);
    this.listeners.set(address, t);
  }

  /** @internal */
  release(t: MemoryTransport): void {
    for (const [address, holder] of this.listeners) if (holder === t) this.listeners.delete(address);
  }

  /** @internal */
  inUse(address: string, t: MemoryTransport): boolean {
    const holder = this.listeners.get(address);
    return holder !== undefined && holder !== t;
  }

  /** @internal Opens a pipe from `from` to `address`; the outcome arrives asynchronously at `sink`. */
  connect(from: MemoryTransport, address: string, sink: WireSink): Wire {
    const pipe = new Pipe(this, from.self.address, address);
    pipe.a.sink = sink;
    this.pipes.add(pipe);
    setImmediate(() => this.complete(pipe, from, address));
    return pipe.a;
  }

  /** @internal */
  removePipe(p: Pipe): void {
    this.pipes.delete(p);
  }

  private complete(pipe: Pipe, from: MemoryTransport, address: string): void {
    if (pipe.a.done || pipe.a.hasEnded) {
      pipe.break(new UnavailableError('connection abandoned'));
      return;
    }
    const target = this.listeners.get(address);
    let refusal: string | undefined;
    if (this.killed.has(from)) refusal = `${from.self.address} was killed`;
    else if (!target) refusal = `nothing listens on ${address}`;
    else if (!this.reachable(from.self.address, address)) refusal = `${address} is unreachable from ${from.self.address}`;
    else {
      const accepted = target.acceptFrom((sink) => {
        pipe.b.attach(sink);
        return pipe.b;
      });
      if (!accepted) refusal = `${address} is not accepting links`;
    }
    if (refusal !== undefined) pipe.break(new UnavailableError(refusal));
  }

  private breakWhere(match: (p: Pipe) => boolean, reason: string): void {
    const error = new UnavailableError(reason);
    for (const p of [...this.pipes]) {
      if (match(p)) {
        this.pipes.delete(p);
        p.break(error);
      }
    }
  }
}

/** A node's transport on a MemoryNetwork (made by `network.transport()`). */
export class MemoryTransport extends TransportCore {
  constructor(
    private readonly network: MemoryNetwork,
    options: Partial<TransportOptions> = {},
  ) {
    super(options);
  }

  /** Starts and listens on `self.address`, which no other live node of the network may hold. */
  override start(self: PeerInfo, handler: LinkHandler): void {
    if (this.network.inUse(self.address, this)) throw new FailedPreconditionError(`address ${self.address} is in use by another node`);
    super.start(self, handler);
    this.network.claim(self.address, this);
  }

  /** @internal Used by MemoryNetwork to hand over an inbound pipe. */
  acceptFrom(wireFor: (sink: WireSink) => Wire): boolean {
    return this.accept(wireFor);
  }

  protected openWire(address: string, sink: WireSink): Wire {
    return this.network.connect(this, address, sink);
  }

  protected async stopped(): Promise<void> {
    this.network.release(this);
  }
}
