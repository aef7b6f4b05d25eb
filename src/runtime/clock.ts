/**
 * Time, injected. Runtime and cluster logic read the time and set timers only through a Clock so that
 * tests can drive time by hand (see clock-fake.ts) instead of sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms`; cancelling an already fired timer is a no-op. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    // A pending timer must never be what keeps a node process alive after shutdown.
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
