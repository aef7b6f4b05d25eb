import type { ActorContext } from './actor-type.js';
import type { Logger } from './logger.js';
import { refKey, validateRef, type ActorRef } from './ref.js';
import type { OutboxItem } from './envelope.js';
import { InvalidArgumentError } from '../errors.js';

export type TimerChange = { name: string; at: number; every?: number; m: unknown } | { name: string; cancel: true };

/** The side of the runtime a turn needs: asks go out at once, everything else waits for the commit. */
export interface TurnHost {
  ask<T>(to: ActorRef, message: unknown, timeoutMs: number | undefined, from: ActorRef): Promise<T>;
}

/**
 * The ActorContext of one turn. It only records effects; the cell commits them with the turn's
 * new state and carries them out after the commit is durable.
 */
export class TurnContext implements ActorContext {
  outbox: OutboxItem[] | undefined;
  timers: TimerChange[] | undefined;
  replied = false;
  replyValue: unknown = null;

  constructor(
    readonly self: ActorRef,
    private readonly selfKey: string,
    readonly sender: ActorRef | undefined,
    readonly seq: number,
    /** Names this turn's outbox ids: `<self>#<turnId>.<index>`. */
    private readonly turnId: string,
    readonly now: number,
    readonly log: Logger,
    private readonly host: TurnHost,
  ) {}

  private push(item: OutboxItem): void {
    (this.outbox ??= []).push(item);
  }

  private nextId(): string {
    return `${this.selfKey}#${this.turnId}.${this.outbox?.length ?? 0}`;
  }

  tell(to: ActorRef, message: unknown): void {
    const ref = validateRef(to, 'tell target');
    this.push({ k: 'tell', to: refKey(ref), p: message, id: this.nextId() });
  }

  ask<T = unknown>(to: ActorRef, message: unknown, timeoutMs?: number): Promise<T> {
    return this.host.ask<T>(validateRef(to, 'ask target'), message, timeoutMs, this.self);
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
