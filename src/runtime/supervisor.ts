import type { SupervisionStrategy } from './actor-type.js';

/**
 * Restart intensity as in OTP: a supervisor allows at most `maxRestarts` restarts of its children
 * within any `withinMs` span; one more means the supervisor itself is failing and escalates.
 */
export class RestartIntensity {
  private stamps: number[] = [];

  constructor(
    private readonly maxRestarts: number,
    private readonly withinMs: number,
  ) {}

  /** Records a restart at `now`; false when it exceeds the allowed intensity. */
  allow(now: number): boolean {
    this.stamps = this.stamps.filter((t) => now - t < this.withinMs);
    this.stamps.push(now);
    return this.stamps.length <= this.maxRestarts;
  }
}

/**
 * Which children restart when `failed` (one of `children`, in spawn order) crashes:
 * `one_for_one` only it, `one_for_all` every child, `rest_for_one` it and those spawned after it.
 */
export function restartSet(strategy: SupervisionStrategy, children: readonly string[], failed: string): string[] {
  const at = children.indexOf(failed);
  if (at < 0 || strategy === 'one_for_one') return [failed];
  if (strategy === 'one_for_all') return [...children];
  return children.slice(at);
}
