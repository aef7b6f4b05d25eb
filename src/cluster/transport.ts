/**
 * The node-to-node transport contract. Membership, routing and replication talk to other nodes only
 * through this interface; transport-grpc.ts carries it over one long-lived bidirectional gRPC stream
 * per pair of nodes (service cei.v1.Peer, proto/cei/v1/peer.proto), and transport-memory.ts carries it
 * inside one process for unit tests, where a test can cut and heal links.
 *
 * Links: at most one live link per pair of nodes. Either side may dial; when both dialed, the link
 * dialed by the node with the smaller id is kept and the other is closed, the same decision on both
 * ends. A link is up once both ends exchanged hellos, which carry each side's PeerInfo.
 *
 * Ordering: frames sent on one link arrive in the order sent, each at most once. Nothing is resent
 * after a link drops: callers that need delivery retry at their level (requests reject, and the
 * caller decides).
 */
import type { ErrorCode } from '../errors.js';
import type { MemberRole } from './membership.js';

/** Who is at the other end of a link, as its hello said. */
export interface PeerInfo {
  readonly id: string;
  /** The address the peer serves on (its --listen, as bound). */
  readonly address: string;
  readonly role: MemberRole;
  /** The peer's start time in ms (see membership.ts). */
  readonly incarnation: number;
  /** The peer takes raw bodies (a Buffer given to send or request); older nodes do not. */
  readonly rawBodies?: boolean;
  /** The peer reads actor.tells requests in tells-codec.ts's binary form; older nodes read JSON only. */
  readonly rawTells?: boolean;
}

/** Errors a request may reject with carry the remote error's code, so callers can tell retryable ones. */
export interface RemoteErrorInfo {
  code: ErrorCode;
  message: string;
}

/** A live link to one peer. */
export interface Link {
  readonly peer: PeerInfo;
  /** True until the link dropped or was closed; a dropped link never comes back (a new one is made). */
  readonly open: boolean;
  /**
   * Fire and forget, in order; silently dropped once the link is closed. `body` is JSON-serializable,
   * or a Buffer that arrives as a Buffer (only to a peer whose `rawBodies` is true).
   */
  send(method: string, body: unknown): void;
  /**
   * Asks the peer's handler and resolves with its answer. Rejects with UnavailableError when the
   * link drops first, DeadlineExceededError after `timeoutMs`, or a CeiError with the remote code.
   */
  request<T = unknown>(method: string, body: unknown, timeoutMs: number): Promise<T>;
  close(): void;
}

/**
 * What the transport calls. Calls for one link come in frame order; `onRequest` may be async and
 * answers are sent in completion order.
 */
export interface LinkHandler {
  onLinkUp(link: Link): void;
  onLinkDown(link: Link): void;
  onMessage(link: Link, method: string, body: unknown): void;
  onRequest(link: Link, method: string, body: unknown): Promise<unknown>;
}

export interface Transport {
  /** Starts accepting links as `self`. Must be called once before dial. */
  start(self: PeerInfo, handler: LinkHandler): void;
  /**
   * Keeps dialing `address` (with backoff) until a link to it is up, and redials when it drops,
   * until `forget(address)`. The peer's id is learnt from its hello.
   */
  dial(address: string): void;
  forget(address: string): void;
  /** Links that are up now, one per peer id. */
  links(): Link[];
  link(peerId: string): Link | undefined;
  /** Closes every link and stops dialing and accepting. */
  stop(): Promise<void>;
}
