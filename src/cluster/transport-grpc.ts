/**
 * The node-to-node transport over gRPC: one long-lived bidirectional `cei.v1.Peer/Link` call per pair
 * of nodes (proto/cei/v1/peer.proto), served on the node's existing gRPC server. The link logic
 * (hellos, the one-link-per-pair rule, requests, redialing) is transport-core.ts; this file turns a
 * Link call into a Wire.
 *
 * Mechanics:
 *  - One grpc-js client (channel) per dialed address, with keepalive pings (10 s, 5 s timeout) so a
 *    peer that hangs or vanishes behind a silent network is noticed, and with transparent retries
 *    off (grpc-js keeps every message of a retryable call and trims that buffer per message: O(n)
 *    per frame on a long stream). A client whose call broke is closed and a fresh one made for the
 *    next attempt, so our own backoff (not grpc-js' reconnect backoff, which grows to minutes) sets
 *    the pace of redials.
 *  - A peer process that dies (SIGKILL) resets its TCP connections: the stream errors at once on
 *    this side and the link is reported down within milliseconds; no keepalive is involved.
 *  - Each end lets the other have PEER_FLOW_CONTROL_WINDOW bytes in flight (HTTP/2's default is
 *    64 KiB): a hand-off's offers are 1-2 MB messages, and with the default window a busy receiver
 *    that is slow to send WINDOW_UPDATEs held every frame queued behind them (a barrier question, an
 *    ask's replicated write) for 100-250 ms.
 *  - Writes never block. Frames written while the previous message is still with grpc-js queue up
 *    and leave as one batch (see CallWire), which absorbs bursts; a link with more unwritten frames
 *    than `maxBufferedFrames` or `maxBufferedBytes` (a peer that stopped reading, so HTTP/2 flow
 *    control holds our writes) is dropped rather than allowed to grow memory without bound.
 */
import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { peerApi } from '../api/proto.js';
import { CeiError } from '../errors.js';
import type { PeerClient, PeerHandlers } from '../generated/cei/v1/Peer.js';
import type { PeerFrame, PeerFrame__Output } from '../generated/cei/v1/PeerFrame.js';
import { TransportCore, type Frame, type TransportOptions, type Wire, type WireSink } from './transport-core.js';

export { RECONNECT_DEFAULTS, TRANSPORT_DEFAULTS, TRANSPORT_TEST_PRESET, type TransportOptions } from './transport-core.js';

export interface GrpcTransportOptions extends Partial<TransportOptions> {
  /** Unwritten frames one link may hold before it is dropped (default MAX_BUFFERED_FRAMES). */
  maxBufferedFrames?: number;
  /** Unwritten bytes of bodies one link may hold before it is dropped (default MAX_BUFFERED_BYTES). */
  maxBufferedBytes?: number;
}

/**
 * Safety nets, not flow control: a link whose unwritten frames pass either bound (a peer that
 * stopped reading, or one slower than us for long) is dropped rather than allowed to grow memory
 * without bound. Far above any burst: a link writes some 300,000 frames/s, and senders that may
 * outrun their peer for long bound their own windows (e.g. unanswered requests).
 */
export const MAX_BUFFERED_FRAMES = 1_000_000;
export const MAX_BUFFERED_BYTES = 256 * 1024 * 1024;

/** Largest message either way (state transfers ride the link too). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * A batch closes at this many frames or bytes of bodies, so that it stays below the 4 MiB a gRPC
 * server accepts by default unless one frame alone is bigger.
 */
const MAX_BATCH_FRAMES = 4_096;
const MAX_BATCH_BYTES = 1024 * 1024;

/**
 * The HTTP/2 receive window of a link, per stream and per connection, each way: well above an offer
 * of `handoffBatch` actors (1-2 MB), so that a peer sends the whole of one without waiting for a
 * WINDOW_UPDATE from a busy event loop. Measured (fail-over bench, 2 x 20 SIGKILL rounds each way):
 * 16 MiB left 3 of 40 rounds at 600 ms or more, HTTP/2's default 64 KiB 9 of 40 (max 1,046 ms).
 */
export const PEER_FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

/**
 * Raises the receive window of the HTTP/2 session an accepted Link call came on (its connection
 * window, and the stream window it announces to the peer). grpc-js's server takes no option for this
 * yet (grpc/grpc-node PR #3058 adds `grpc-node.flow_control_window` there; the client side has it),
 * so the session is found through the call's internals: when they are not where expected, the
 * session keeps its defaults and the link works as before, only slower under load. Returns the
 * session it raised (or found raised), for tests.
 */
export function raiseReceiveWindow(call: grpc.ServerDuplexStream<unknown, unknown>): Http2Session | undefined {
  const inner = (call as unknown as { call?: { stream?: { session?: Partial<Http2Session> } } }).call;
  const session = inner?.stream?.session;
  if (typeof session?.setLocalWindowSize !== 'function' || typeof session.settings !== 'function') return undefined;
  if (!raisedSessions.has(session as Http2Session)) {
    raisedSessions.add(session as Http2Session);
    session.setLocalWindowSize(PEER_FLOW_CONTROL_WINDOW);
    session.settings({ initialWindowSize: PEER_FLOW_CONTROL_WINDOW });
  }
  return session as Http2Session;
}

const raisedSessions = new WeakSet<Http2Session>();

/** Channel options for a long-lived Link call (see the file comment). */
export const PEER_CHANNEL_OPTIONS: Readonly<grpc.ChannelOptions> = Object.freeze({
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.enable_retries': 0,
  'grpc-node.flow_control_window': PEER_FLOW_CONTROL_WINDOW,
  // No per-message channelz bookkeeping (see the public server's options in api/server.ts).
  'grpc.enable_channelz': 0,
  // Each transport its own connections, also when several nodes share one process (tests).
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': MAX_FRAME_BYTES,
  'grpc.max_send_message_length': MAX_FRAME_BYTES,
});

const EMPTY = Buffer.alloc(0);

type ClientCall = grpc.ClientDuplexStream<PeerFrame, PeerFrame__Output>;
type ServerCall = grpc.ServerDuplexStream<PeerFrame__Output, PeerFrame>;

/** One frame as a PeerFrame message: only fields that differ from their defaults, to encode less. */
function toMessage(f: Frame): PeerFrame {
  let m: PeerFrame;
  if (f.body instanceof Uint8Array) {
    m = { kind: f.kind, method: f.method, body: f.body, raw: true };
  } else {
    const json = f.body === undefined ? undefined : JSON.stringify(f.body);
    m = { kind: f.kind, method: f.method, body: json === undefined ? EMPTY : Buffer.from(json, 'utf8') };
  }
  if (f.id !== 0) m.id = f.id;
  if (f.ok) m.ok = true;
  if (f.errorCode !== '') m.error_code = f.errorCode;
  if (f.error !== '') m.error = f.error;
  return m;
}

/**
 * One Link call as a Wire, from either end. At most one message is with grpc-js at a time: its
 * server stream calls a write back only once HTTP/2 has written it, a turn of the event loop later,
 * so one frame per message tops out near 20,000 frames/s (the dialing side's client stream calls
 * back sooner since patches/@grpc+grpc-js*.patch, but a message still costs its encoding and
 * grpc-js's per-message work). Frames written meanwhile queue here and leave together as one
 * "batch" frame when that write completes. An idle link thus sends each frame at once, and a busy
 * one sends fewer, bigger messages instead of falling behind.
 */
class CallWire implements Wire {
  /** This side ended (end() called, or the call broke): nothing more is accepted. */
  private ended = false;
  /** The call broke: nothing more is written at all. */
  private broken = false;
  /** Reported closed to the sink. */
  private done = false;
  /** A message is with grpc-js and its write callback has not run yet. */
  private writing = false;
  /** Frames waiting for the write in flight: queue[head..], with `queuedBytes` of bodies. */
  private queue: PeerFrame[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** end() came while frames were queued: end the call once they are written. */
  private endQueued = false;
  private readonly afterWrite = (): void => this.flush();

  constructor(
    private readonly call: ClientCall | ServerCall,
    private readonly sink: WireSink,
    private readonly limits: { maxBufferedFrames: number; maxBufferedBytes: number },
    private readonly onBroken: (wire: CallWire) => void,
  ) {
    call.on('data', (m: PeerFrame__Output) => this.receive(m));
    call.on('error', (err: Error) => this.close(err));
    call.on('end', () => this.close());
    // The server side: the client cancelled or its connection dropped (a killed peer).
    call.on('cancelled', () => this.close(new Error('the call was cancelled or its connection dropped')));
  }

  write(f: Frame): void {
    if (this.ended) return;
    const m = toMessage(f);
    if (!this.writing) {
      this.writing = true;
      this.call.write(m, this.afterWrite);
      return;
    }
    this.queue.push(m);
    this.queuedBytes += (m.body as Buffer).length;
    const { maxBufferedFrames, maxBufferedBytes } = this.limits;
    if (this.queue.length - this.head > maxBufferedFrames || this.queuedBytes > maxBufferedBytes) {
      const n = this.queue.length - this.head;
      this.abortWith(new CeiError('RESOURCE_EXHAUSTED', `the peer does not keep up: ${n} frames (${this.queuedBytes} bytes) unwritten`));
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.broken) return;
    if (this.queue.length > this.head) this.endQueued = true;
    else this.endCall();
  }

  abort(reason: string): void {
    if (this.broken) return;
    this.abortWith(new CeiError('UNAVAILABLE', reason));
  }

  /** The write in flight is done: sends what queued up meanwhile, as one message. */
  private flush(): void {
    if (this.broken) return;
    const queued = this.queue.length - this.head;
    if (queued === 0) {
      this.writing = false;
      if (this.endQueued) this.endCall();
      return;
    }
    // Up to MAX_BATCH_FRAMES frames and MAX_BATCH_BYTES of bodies; a bigger frame goes alone.
    let n = 0;
    let bytes = 0;
    while (n < queued && n < MAX_BATCH_FRAMES) {
      const size = (this.queue[this.head + n]!.body as Buffer).length;
      if (n > 0 && bytes + size > MAX_BATCH_BYTES) break;
      bytes += size;
      n++;
    }
    this.queuedBytes -= bytes;
    const m: PeerFrame = n === 1 ? this.queue[this.head]! : { kind: 'batch', frames: this.queue.slice(this.head, this.head + n) };
    this.head += n;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.call.write(m, this.afterWrite);
  }

  private endCall(): void {
    try {
      this.call.end();
    } catch {
      // The call is gone already; its 'error' or 'end' reports that.
    }
  }

  private receive(m: PeerFrame__Output): void {
    if (m.kind !== 'batch') {
      this.deliver(m);
      return;
    }
    for (const f of m.frames) {
      if (f.kind !== 'batch') this.deliver(f);
    }
  }

  private deliver(m: PeerFrame__Output): void {
    if (this.done) return;
    let body: unknown;
    if (m.raw) body = m.body;
    else if (m.body.length > 0) {
      try {
        body = JSON.parse(m.body.toString('utf8'));
      } catch {
        this.abortWith(new CeiError('INTERNAL', `peer sent a ${m.kind} frame whose body is not JSON`));
        return;
      }
    }
    this.sink.frame({ kind: m.kind, id: Number(m.id), method: m.method, body, ok: m.ok, errorCode: m.error_code, error: m.error });
  }

  /** Reports the end of the call once. */
  private close(err?: Error): void {
    if (this.done) return;
    this.done = true;
    if (err) {
      this.ended = true;
      this.broken = true;
      this.queue = [];
      this.head = 0;
      this.queuedBytes = 0;
      this.onBroken(this);
    }
    this.sink.closed(err);
  }

  /** Ends the call at once, with an error on both sides. */
  private abortWith(err: Error): void {
    const call = this.call;
    this.close(err);
    if ('cancel' in call) call.cancel();
    else call.emit('error', { code: grpc.status.UNAVAILABLE, details: err.message });
  }
}

interface Dialed {
  client: PeerClient;
  /** The wire of the latest call made on this client. */
  latest: CallWire | undefined;
}

/**
 * The Transport over gRPC. The node's gRPC server serves it through `addToServer`, called before
 * the server binds; `start` then tells it who this node is. Inbound calls before `start` and after
 * `stop` are refused with UNAVAILABLE (the dialer retries).
 */
export class GrpcTransport extends TransportCore {
  private readonly dialed = new Map<string, Dialed>();
  private readonly limits: { maxBufferedFrames: number; maxBufferedBytes: number };
  private readonly channelOptions: grpc.ChannelOptions;

  constructor(options: GrpcTransportOptions = {}) {
    const { maxBufferedFrames = MAX_BUFFERED_FRAMES, maxBufferedBytes = MAX_BUFFERED_BYTES, ...rest } = options;
    super(rest);
    if (!(maxBufferedFrames > 0)) throw new RangeError(`maxBufferedFrames must be positive, got ${maxBufferedFrames}`);
    if (!(maxBufferedBytes > 0)) throw new RangeError(`maxBufferedBytes must be positive, got ${maxBufferedBytes}`);
    this.limits = { maxBufferedFrames, maxBufferedBytes };
    const { initialMs, maxMs } = this.options.reconnect;
    this.channelOptions = {
      ...PEER_CHANNEL_OPTIONS,
      'grpc.initial_reconnect_backoff_ms': Math.max(1, initialMs),
      'grpc.max_reconnect_backoff_ms': Math.max(1, maxMs),
    };
  }

  /** Registers the cei.v1.Peer service on the node's server; call once, before the server binds. */
  addToServer(server: grpc.Server): void {
    const handlers: PeerHandlers = { Link: (call) => this.serve(call) };
    server.addService(peerApi().peer.cei.v1.Peer.service, handlers);
  }

  protected openWire(address: string, sink: WireSink): Wire {
    let entry = this.dialed.get(address);
    if (!entry) {
      const client = new (peerApi().peer.cei.v1.Peer)(address, grpc.credentials.createInsecure(), this.channelOptions);
      entry = { client, latest: undefined };
      this.dialed.set(address, entry);
    }
    const dialed = entry;
    const wire = new CallWire(dialed.client.Link(), sink, this.limits, (broken) => {
      // A broken call may leave its channel in grpc-js' own reconnect backoff: start afresh next time.
      if (dialed.latest === broken && this.dialed.get(address) === dialed) {
        this.dialed.delete(address);
        dialed.client.close();
      }
    });
    dialed.latest = wire;
    return wire;
  }

  protected override forgotten(address: string): void {
    // A link that is up keeps its call; closing the channel lets that call finish first.
    this.dialed.get(address)?.client.close();
    this.dialed.delete(address);
  }

  protected async stopped(): Promise<void> {
    for (const { client } of this.dialed.values()) client.close();
    this.dialed.clear();
  }

  private serve(call: ServerCall): void {
    raiseReceiveWindow(call);
    const accepted = this.accept((sink) => new CallWire(call, sink, this.limits, () => {}));
    if (!accepted) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'this node is not accepting peer links' });
  }
}
