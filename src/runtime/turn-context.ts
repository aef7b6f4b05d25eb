import type { ActorContext } from './actor-type.js';
import type { Logger } from './logger.js';
import { parseRefKey, refKey, validateRef, type ActorRef } from './ref.js';
import type { Envelope, OutboxItem } from './envelope.js';
import { InvalidArgumentError } from '../errors.js';

const UNCHANGED = Symbol('unchanged');

/** A record deleted in this run of turns (see TurnContext.recordChanges). */
export const DELETED_RECORD: unique symbol = Symbol('deleted record');

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
  /** Records set or deleted by the turns of this run, to commit with them. */
  recordChanges: Map<string, unknown> | undefined;
  /** What the current turn's record changes replaced, to undo them if its handler throws. */
  private turnRecordUndo: Array<[string, unknown]> | undefined;
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
    /** The actor's committed records (read-only here). */
    private readonly committedRecords: ReadonlyMap<string, unknown>,
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
    if (this.turnRecordUndo) this.turnRecordUndo.length = 0;
  }

  /** Forgets the effects of the current turn (its handler threw). */
  discardTurn(): void {
    if (this.outbox) this.outbox.length = this.turnOutboxStart;
    if (this.timers) this.timers.length = this.turnTimersStart;
    const undo = this.turnRecordUndo;
    if (undo && undo.length > 0) {
      for (let i = undo.length - 1; i >= 0; i--) {
        const [name, before] = undo[i]!;
        if (before === UNCHANGED) this.recordChanges!.delete(name);
        else this.recordChanges!.set(name, before);
      }
      undo.length = 0;
    }
  }

  record(name: string): unknown {
    const changed = this.recordChanges?.get(name);
    if (changed !== undefined) return changed === DELETED_RECORD ? undefined : changed;
    return this.committedRecords.get(name);
  }

  putRecord(name: string, value: unknown): void {
    if (typeof name !== 'string' || name === '' || name.includes('\x00')) throw new InvalidArgumentError('record name must be a non-empty string');
    if (value === undefined) throw new InvalidArgumentError(`record "${name}": value must not be undefined (use deleteRecord)`);
    this.changeRecord(name, value);
  }

  deleteRecord(name: string): void {
    this.changeRecord(name, DELETED_RECORD);
  }

  private changeRecord(name: string, value: unknown): void {
    const changes = (this.recordChanges ??= new Map());
    (this.turnRecordUndo ??= []).push([name, changes.has(name) ? changes.get(name) : UNCHANGED]);
    changes.set(name, value);
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
