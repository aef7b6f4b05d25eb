/** Exponential backoff with full jitter bounds, as one reusable value (grpc-js BackoffTimeout's rules). */
export interface BackoffOptions {
  /** First delay, ms. */
  initialMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
  /** Growth per attempt. */
  multiplier: number;
  /** Fraction of the delay randomised either way (0 = none). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 10, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

export class Backoff {
  private attempt = 0;
  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {
    if (!(options.initialMs >= 0) || !(options.maxMs >= options.initialMs) || !(options.multiplier >= 1)) {
      throw new RangeError(`invalid backoff options ${JSON.stringify(options)}`);
    }
    if (!(options.jitter >= 0 && options.jitter < 1)) throw new RangeError('backoff jitter must be in [0, 1)');
  }

  /** The delay before the next attempt; each call moves one attempt further. */
  next(): number {
    const { initialMs, maxMs, multiplier, jitter } = this.options;
    const base = Math.min(maxMs, initialMs * multiplier ** this.attempt);
    this.attempt++;
    const spread = base * jitter * (this.random() * 2 - 1);
    return Math.max(0, Math.min(maxMs, Math.round(base + spread)));
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
