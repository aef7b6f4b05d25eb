import type { ActorContext } from './actor-type.js';
import type { Logger } from './logger.js';
import { parseRefKey, refKey, validateRef, type ActorRef } from './ref.js';
import type { Envelope, OutboxItem } from './envelope.js';
import { InvalidArgumentError } from '../errors.js';

export type TimerChange = { name: string; at: number; every?: number; m: unknown } | { name: string; cancel: true };

/** The side of the runtime a turn needs: asks go out at once, everything else waits for the commit. */
export interface TurnHost {
  actorAsk<T>(to: ActorRef, message: unknown, timeoutMs: number | undefined, from: ActorRef): Promise<T>;
}

/**
 * The ActorContext of a run of consecutive turns of one actor, reused from message to message (it is
 * on the hot path). It only records effects; the cell commits them with the new state and carries
 * them out once the commit is durable. Outbox ids are `<self>#<turn>.<index>`, where the turn is the
 * message's seq (hex) or `a<n>` for the n-th activation, so a replayed turn produces the same ids.
 */
export class TurnContext implements ActorContext {
  outbox: OutboxItem[] | undefined;
  timers: TimerChange[] | undefined;
  seq = 0;
  replied = false;
  replyValue: unknown = null;
  /** Names the turn in outbox ids: set for activation turns, else derived from `seq` when needed. */
  private turnId: string | undefined;
  private senderKey: string | undefined;
  private turnOutboxStart = 0;
  private turnTimersStart = 0;

  constructor(
    readonly self: ActorRef,
    private readonly selfKey: string,
    public now: number,
    readonly log: Logger,
    private readonly host: TurnHost,
  ) {}

  /** Starts the turn of `env` (seq names it), or an activation turn named `turnId`. */
  begin(env: Envelope | undefined, seq: number, turnId?: string): void {
    this.seq = seq;
    this.turnId = turnId;
    this.senderKey = env?.f;
    this.replied = false;
    this.replyValue = null;
    this.turnOutboxStart = this.outbox?.length ?? 0;
    this.turnTimersStart = this.timers?.length ?? 0;
  }

  /** Forgets the effects of the current turn (its handler threw). */
  discardTurn(): void {
    if (this.outbox) this.outbox.length = this.turnOutboxStart;
    if (this.timers) this.timers.length = this.turnTimersStart;
  }

  get sender(): ActorRef | undefined {
    return this.senderKey === undefined ? undefined : parseRefKey(this.senderKey);
  }

  private push(item: OutboxItem): void {
    (this.outbox ??= []).push(item);
  }

  private nextId(): string {
    this.turnId ??= this.seq.toString(16);
    return `${this.selfKey}#${this.turnId}.${(this.outbox?.length ?? 0) - this.turnOutboxStart}`;
  }

  tell(to: ActorRef, message: unknown): void {
    const ref = validateRef(to, 'tell target');
    this.push({ k: 'tell', to: refKey(ref), p: message, id: this.nextId() });
  }

  ask<T = unknown>(to: ActorRef, message: unknown, timeoutMs?: number): Promise<T> {
    return this.host.actorAsk<T>(validateRef(to, 'ask target'), message, timeoutMs, this.self);
  }

  reply(value: unknown): void {
    this.replied = true;
    this.replyValue = value === undefined ? null : value;
  }

  spawn(child: ActorRef, init?: unknown): void {
    const ref = validateRef(child, 'child');
    this.push({ k: 'spawn', ref: refKey(ref), init: init ?? null, id: this.nextId() });
  }

  stop(ref: ActorRef = this.self): void {
    this.push({ k: 'stop', ref: refKey(validateRef(ref)), id: this.nextId() });
  }

  after(name: string, ms: number, message: unknown): void {
    this.setTimer(name, ms, undefined, message);
  }

  every(name: string, ms: number, message: unknown): void {
    if (!(ms > 0)) throw new InvalidArgumentError(`timer "${name}": interval must be > 0 ms`);
    this.setTimer(name, ms, ms, message);
  }

  cancelTimer(name: string): void {
    (this.timers ??= []).push({ name, cancel: true });
  }

  private setTimer(name: string, ms: number, every: number | undefined, m: unknown): void {
    if (typeof name !== 'string' || name === '' || name.includes('\x00')) {
      throw new InvalidArgumentError('timer name must be a non-empty string');
    }
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError(`timer "${name}": delay must be a finite number >= 0`);
    (this.timers ??= []).push(every === undefined ? { name, at: this.now + ms, m } : { name, at: this.now + ms, every, m });
  }
}
