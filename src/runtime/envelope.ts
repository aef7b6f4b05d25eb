/** A message as it sits in a mailbox (and on disk, as JSON). Short keys: this is written per message. */
export interface Envelope {
  /** Mailbox sequence number, monotonic per actor. */
  s: number;
  /** The payload, a JSON value. */
  p: unknown;
  /** The sender's message id, when it gave one (deduplicated within the window). */
  i?: string;
  /** Ref key of the sending actor, when an actor sent it. */
  f?: string;
  /** Ask id of a waiting requester, when it was asked rather than told. */
  k?: string;
}

/**
 * JSON.stringify(env), with the payload as the JSON text `payloadJson` it was parsed from: a tell
 * that arrives as JSON need not be serialized again for its mailbox entry (which is usually never
 * written: it drops out with its removal, see dropTransientPairs). The text's spacing is kept.
 */
export function envelopeJson(env: Envelope, payloadJson: string): string {
  let out = `{"s":${env.s},"p":${payloadJson}`;
  if (env.i !== undefined) out += `,"i":${JSON.stringify(env.i)}`;
  if (env.f !== undefined) out += `,"f":${JSON.stringify(env.f)}`;
  if (env.k !== undefined) out += `,"k":${JSON.stringify(env.k)}`;
  return `${out}}`;
}

/** What a turn leaves to do once its commit is durable. */
export type OutboxItem =
  | { k: 'tell'; to: string; p: unknown; id: string }
  | { k: 'spawn'; ref: string; init: unknown; id: string }
  | { k: 'stop'; ref: string; id: string };

export interface StoredTimer {
  at: number;
  every?: number;
  m: unknown;
}

export interface StoredState {
  /** The actor's own state. */
  v: unknown;
  /** Last handled seq. */
  h: number;
  /** Activations so far (names the outbox of onActivate turns). */
  a: number;
  /** Children in spawn order (ref keys). */
  c?: string[];
  /** Parent (ref key); absent for top-level actors. */
  p?: string;
  /** Tombstone of a stopped actor: only `h` and `a` count. */
  x?: true;
}

export interface DeadLetterRecord {
  e: Envelope;
  err: string;
  n: number;
  t: number;
}

export interface TellAck {
  seq: number;
  messageId: string;
  duplicate: boolean;
}
