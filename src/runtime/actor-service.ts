import type { ActorRef } from './ref.js';
import type { TellAck } from './envelope.js';
import type { ActorDescription, DeadLetter } from './runtime.js';

export interface TellOptions {
  messageId?: string;
  /** Ref key of the sending actor, when an actor sends. */
  from?: string;
  /**
   * The payload as the JSON text it was parsed from, when the caller has it (the public API does):
   * the owner stores that text instead of serializing the payload again. Never sent to other nodes.
   */
  payloadJson?: string;
}

/**
 * What can be done to actors by ref, wherever they live. The local ActorSystem implements it for the
 * actors of one node; the cluster's router implements it for the whole cluster by forwarding to each
 * actor's owner. The public API and actors' outboxes both talk to an ActorService.
 */
export interface ActorService {
  spawn(ref: ActorRef, init?: unknown, parent?: string): Promise<{ created: boolean; node: string }>;
  tell(ref: ActorRef, payload: unknown, opts?: TellOptions): Promise<TellAck>;
  ask<T = unknown>(ref: ActorRef, payload: unknown, timeoutMs?: number, from?: ActorRef): Promise<T>;
  stop(ref: ActorRef): Promise<void>;
  describe(ref: ActorRef): Promise<ActorDescription>;
  list(opts?: { type?: string; pageSize?: number; pageToken?: string }): Promise<{ actors: ActorDescription[]; nextPageToken: string }>;
  deadLetters(ref: ActorRef): Promise<DeadLetter[]>;
  redrive(ref: ActorRef, seqs?: number[]): Promise<number>;
}
