import type { ActorRef } from './ref.js';
import type { Logger } from './logger.js';

/**
 * How a type's mailbox and state are kept:
 * - `sync`: on disk (fsynced) before the sender hears back; survives power loss.
 * - `relaxed`: written in order without fsync; survives a process crash, not a power loss.
 * - `memory`: never stored; lost with the process. Opt-in for high-rate actors that may lose mail.
 */
export type Durability = 'sync' | 'relaxed' | 'memory';

/** OTP restart strategies, applied by a parent to its children. */
export type SupervisionStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

export interface SupervisionOptions {
  /** How a failing child's siblings are treated. */
  strategy: SupervisionStrategy;
  /** More than this many restarts within `withinMs` escalates the failure to the parent. */
  maxRestarts: number;
  withinMs: number;
  /** Tries of one message before it goes to dead letters. */
  maxAttempts: number;
  /** First and largest delay between restarts (doubling in between). */
  backoffInitialMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_SUPERVISION: SupervisionOptions = {
  strategy: 'one_for_one',
  maxRestarts: 10,
  withinMs: 10_000,
  maxAttempts: 3,
  backoffInitialMs: 10,
  backoffMaxMs: 2_000,
};

/** What a handler may do besides returning its new state. Valid only during the handler's turn. */
export interface ActorContext {
  readonly self: ActorRef;
  /** The actor that sent the message being handled, if it was an actor. */
  readonly sender: ActorRef | undefined;
  /** The mailbox sequence number of the message being handled. */
  readonly seq: number;
  /** The runtime's clock reading for this turn. */
  readonly now: number;
  readonly log: Logger;
  /**
   * Sends after the turn: the message is written with the turn's new state and delivered once that
   * write is durable, with an id derived from (self, seq, index), so a crash neither loses nor
   * duplicates it.
   */
  tell(to: ActorRef, message: unknown): void;
  /** Requests from another actor. Awaiting it holds this actor's turn, so never ask in a cycle. */
  ask<T = unknown>(to: ActorRef, message: unknown, timeoutMs?: number): Promise<T>;
  /** Answers the message being handled when it came from an ask (no-op otherwise). */
  reply(value: unknown): void;
  /** Creates a child (supervised by this actor) after the turn, exactly once. */
  spawn(child: ActorRef, init?: unknown): void;
  /** Stops an actor (a child, or self) after the turn. */
  stop(ref?: ActorRef): void;
  /** Sends `message` to self after `ms`; replaces a timer of the same name. Persisted. */
  after(name: string, ms: number, message: unknown): void;
  /** Sends `message` to self every `ms`; replaces a timer of the same name. Persisted. */
  every(name: string, ms: number, message: unknown): void;
  cancelTimer(name: string): void;
  /**
   * The actor's named records: data kept beside its state, written with the turn and replicated
   * and handed off with the actor, but read and written one record at a time. For data a snapshot
   * per turn would rewrite whole, such as a stream's log. Undefined when there is no such record.
   */
  record(name: string): unknown;
  /** Sets a record (any JSON value) with this turn's commit; visible to later reads at once. */
  putRecord(name: string, value: unknown): void;
  deleteRecord(name: string): void;
}

export type Handler<S> = (state: S, message: unknown, ctx: ActorContext) => S | Promise<S>;

/**
 * An actor type. `validate` is the type's message schema: it runs before anything is enqueued
 * and returns a reason when the message is not one the type accepts.
 */
export interface ActorType<S = unknown> {
  readonly name: string;
  /** The state of a new actor; `init` is what Spawn passed (undefined for a virtual activation). */
  initialState(init: unknown): S;
  handle: Handler<S>;
  validate?(message: unknown): string | undefined;
  validateInit?(init: unknown): string | undefined;
  /** Runs on every activation and restart, before the first message of that incarnation. */
  onActivate?(state: S, ctx: ActorContext): S | Promise<S>;
  durability?: Durability;
  supervision?: Partial<SupervisionOptions>;
  /** Unload from memory after this long without mail (0 = never). Defaults to the runtime's. */
  idleMs?: number;
  /** Which nodes may host it (used by the cluster): any node by default. */
  placement?: 'any' | 'control' | 'pinned';
}

/** Identity helper that keeps the state type of a definition. */
export function defineActor<S>(type: ActorType<S>): ActorType<S> {
  return type;
}
