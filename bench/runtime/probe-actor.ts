import { performance } from 'node:perf_hooks';
import { defineActor, type ActorType, type Durability } from '../../src/runtime/actor-type.js';

/** What a probe is told: when it was sent, by performance.now() of this process. */
export interface ProbeMessage {
  t: number;
}

/**
 * Where probe actors report each message they handle. The runtime runs in the bench process, so a
 * handler can read the same performance clock the sender stamped the message with.
 *
 * Messages handled within the window (set by `setWindow`) are counted and their enqueue-to-handled
 * latency kept; every message is counted in `handled`.
 */
export class ProbeSink {
  handled = 0;
  inWindow = 0;
  readonly latencies: number[] = [];
  private from = Infinity;
  private until = Infinity;
  private waiter: { count: number; resolve: () => void } | undefined;

  /** Counts and samples the messages handled between `from` and `until` (performance.now() times). */
  setWindow(from: number, until: number): void {
    this.from = from;
    this.until = until;
    this.inWindow = 0;
    this.latencies.length = 0;
  }

  record(sentAt: number): void {
    this.handled++;
    const now = performance.now();
    if (now >= this.from && now < this.until) {
      this.inWindow++;
      this.latencies.push(now - sentAt);
    }
    if (this.waiter && this.handled >= this.waiter.count) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve();
    }
  }

  /** Resolves once `count` messages were handled in all; rejects after `deadlineMs`. */
  whenHandled(count: number, deadlineMs: number): Promise<void> {
    if (this.handled >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`handlers saw ${this.handled} of ${count} messages within ${deadlineMs} ms`));
      }, deadlineMs);
      this.waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }
}

/**
 * A bench-only actor type: its state counts the messages it handled, and each message is reported to
 * `sink`. Messages are validated like a real type's (an object with a finite `t`).
 */
export function probeType(name: string, durability: Durability, sink: ProbeSink): ActorType<number> {
  return defineActor<number>({
    name,
    durability,
    initialState: () => 0,
    validate(message) {
      const t = (message as Partial<ProbeMessage> | null)?.t;
      return typeof t === 'number' && Number.isFinite(t) ? undefined : 'probe accepts {"t": <performance.now() at send>}';
    },
    handle(state, message) {
      sink.record((message as ProbeMessage).t);
      return state + 1;
    },
  });
}
