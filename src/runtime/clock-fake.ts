import type { Clock, TimerHandle } from './clock.js';

interface Pending {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when the test says so. `advance(ms)` fires every timer due in that span,
 * in due order, including timers set by the callbacks it fires.
 */
export class FakeClock implements Clock {
  private current: number;
  private order = 0;
  private pending: Pending[] = [];

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const p: Pending = { at: this.current + Math.max(0, ms), order: this.order++, fn, cancelled: false };
    this.pending.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }

  /** Timers not yet fired nor cancelled. */
  get timerCount(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }

  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      this.pending.sort((a, b) => a.at - b.at || a.order - b.order);
      const next = this.pending[0];
      if (!next || next.at > until) break;
      this.pending.shift();
      this.current = Math.max(this.current, next.at);
      next.fn();
    }
    this.current = until;
  }
}
