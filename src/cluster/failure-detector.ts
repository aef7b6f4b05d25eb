/**
 * Phi-accrual failure detection (Hayashibara et al., "The phi accrual failure detector", 2004), with
 * the refinements of Akka's PhiAccrualFailureDetector: a normal distribution fitted to the recent
 * heartbeat intervals, a floor under its standard deviation, and an acceptable pause added to its mean.
 *
 * Instead of a yes/no timeout, the detector gives a suspicion level
 *
 *   phi(t) = -log10(P(the next heartbeat arrives later than t after the last one))
 *
 * so phi = 1 means a 10% chance that the peer is merely late, phi = 8 a 1-in-10^8 chance. It adapts
 * to the heartbeat rate and jitter actually seen: a peer whose heartbeats arrive irregularly (a busy
 * event loop, a lossy link) is given more slack than one whose heartbeats arrive like clockwork.
 *
 * Pure: no timers and no I/O. Time is read from the injected Clock when `heartbeat()` and `phi()` are
 * called, so a test drives it with a FakeClock. Every call is synchronous and cheap (at most
 * maxSampleSize steps, or a sort of the peer ids for the registry listings) and never blocks.
 */
import type { Clock } from '../runtime/clock.js';

/** Settings of a phi-accrual detector. All durations are in milliseconds. */
export interface PhiOptions {
  /** A peer is unavailable once phi reaches this value. > 0; Akka uses 8 (a 1e-8 chance of error). */
  threshold: number;
  /** How many recent heartbeat intervals the distribution is fitted to. An integer >= 1. */
  maxSampleSize: number;
  /**
   * Floor of the fitted standard deviation. Regular heartbeats have a deviation near 0, which would
   * make phi jump from 0 to infinity at the first late heartbeat; the floor keeps a margin. > 0.
   */
  minStdDeviationMs: number;
  /** A silence this long beyond the mean interval is tolerated (GC pauses, brief stalls). >= 0. */
  acceptableHeartbeatPauseMs: number;
  /** Interval assumed before any has been measured: the expected heartbeat interval. > 0. */
  firstHeartbeatEstimateMs: number;
}

/**
 * Production defaults, tuned for a heartbeat every 100 ms. With regular heartbeats the fitted deviation
 * falls below the 50 ms floor, so a peer that falls silent is unavailable after
 *   mean + pause + 5.22 * minStdDeviation = 100 + 200 + 261, about 562 ms of silence
 * (phi = 8 at 5.22 standard deviations), well under the 1 s failover budget, while a silence of
 * 350 ms (one heartbeat 250 ms late) keeps phi below 1. 200 samples are 20 s of history.
 */
export const PHI_DEFAULTS: Readonly<PhiOptions> = Object.freeze({
  threshold: 8,
  maxSampleSize: 200,
  minStdDeviationMs: 50,
  acceptableHeartbeatPauseMs: 200,
  firstHeartbeatEstimateMs: 100,
});

/**
 * Short intervals for tests that run real nodes, tuned for a heartbeat every 20 ms: a silent peer is
 * unavailable after about 113 ms (20 + 40 + 5.22 * 10).
 */
export const PHI_TEST_PRESET: Readonly<PhiOptions> = Object.freeze({
  threshold: 8,
  maxSampleSize: 100,
  minStdDeviationMs: 10,
  acceptableHeartbeatPauseMs: 40,
  firstHeartbeatEstimateMs: 20,
});

/**
 * `options` merged over PHI_DEFAULTS and checked. Throws RangeError naming the first bad field:
 * threshold, minStdDeviationMs and firstHeartbeatEstimateMs must be finite and > 0,
 * acceptableHeartbeatPauseMs finite and >= 0, maxSampleSize an integer >= 1.
 */
export function phiOptions(options: Partial<PhiOptions> = {}): Readonly<PhiOptions> {
  const merged: PhiOptions = { ...PHI_DEFAULTS, ...dropUndefined(options) };
  const positive = (name: keyof PhiOptions): void => {
    const v = merged[name];
    if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`phi option ${name} must be a finite number > 0, got ${String(v)}`);
  };
  positive('threshold');
  positive('minStdDeviationMs');
  positive('firstHeartbeatEstimateMs');
  const pause = merged.acceptableHeartbeatPauseMs;
  if (!(Number.isFinite(pause) && pause >= 0)) {
    throw new RangeError(`phi option acceptableHeartbeatPauseMs must be a finite number >= 0, got ${String(pause)}`);
  }
  if (!(Number.isInteger(merged.maxSampleSize) && merged.maxSampleSize >= 1)) {
    throw new RangeError(`phi option maxSampleSize must be an integer >= 1, got ${String(merged.maxSampleSize)}`);
  }
  return Object.freeze(merged);
}

function dropUndefined(options: Partial<PhiOptions>): Partial<PhiOptions> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<PhiOptions>;
}

/**
 * phi for a silence of `elapsedMs` since the last heartbeat, given intervals normally distributed with
 * `meanMs` and `stdDeviationMs` (> 0). Uses Akka's logistic approximation of the normal CDF (Bowling et al.
 * 2009, absolute error in the probability below 1.5e-4), written in two forms so that neither loses
 * precision on its side of the mean. Non-decreasing in `elapsedMs`; 0 (never -0) far below the mean;
 * Infinity once the probability underflows.
 */
export function phiOf(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  // Math.max also turns the -0 of -log10(1) into 0.
  return Math.max(0, elapsedMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e)));
}

/** The last `capacity` intervals with their running sum and sum of squares (Akka's HeartbeatHistory). */
class IntervalHistory {
  private readonly intervals: number[] = [];
  private sum = 0;
  private squaredSum = 0;

  constructor(private readonly capacity: number) {}

  add(interval: number): void {
    if (this.intervals.length >= this.capacity) {
      const dropped = this.intervals.shift() as number;
      this.sum -= dropped;
      this.squaredSum -= dropped * dropped;
    }
    this.intervals.push(interval);
    this.sum += interval;
    this.squaredSum += interval * interval;
  }

  get count(): number {
    return this.intervals.length;
  }

  get mean(): number {
    return this.sum / this.intervals.length;
  }

  get stdDeviation(): number {
    const mean = this.mean;
    // Rounding in the running sums can make a near-zero variance slightly negative.
    return Math.sqrt(Math.max(0, this.squaredSum / this.intervals.length - mean * mean));
  }
}

/**
 * A phi-accrual detector for one peer. Feed it every heartbeat that arrives from the peer; ask it
 * `phi()` or `isAvailable()` whenever a decision is due (e.g. on the membership tick).
 *
 * Before the first heartbeat the detector is not monitoring: phi() is 0 and isAvailable() is true,
 * as in Akka. Never having heard from a peer is not evidence that it failed (it may still be
 * starting); a caller that must detect a peer that never speaks calls `heartbeat()` once when it
 * starts expecting heartbeats (FailureDetectorRegistry.watch does this), so the silence is measured
 * from then on (Akka's ExpectedFirstHeartbeat).
 */
export class PhiAccrualDetector {
  /** The checked options this detector uses. */
  readonly options: Readonly<PhiOptions>;
  private readonly history: IntervalHistory;
  private last: number | undefined;

  /** Throws RangeError for bad options (see phiOptions). */
  constructor(
    private readonly clock: Clock,
    options: Partial<PhiOptions> = {},
  ) {
    this.options = phiOptions(options);
    this.history = new IntervalHistory(this.options.maxSampleSize);
  }

  /**
   * Records a heartbeat from the peer now. The first one seeds the history with two intervals around
   * firstHeartbeatEstimateMs (+-25%). Later ones record the interval since the previous heartbeat,
   * unless the peer was already unavailable: a long gap then would teach the detector to tolerate
   * exactly the silences it must report. If the clock went backwards no interval is recorded and the
   * silence is measured from this heartbeat on. A clock that jumps back between a peer's last
   * heartbeat and a phi() call delays detection by the jump, so give the detector a monotonic clock.
   */
  heartbeat(): void {
    const now = this.clock.now();
    const last = this.last;
    if (last === undefined) {
      const estimate = this.options.firstHeartbeatEstimateMs;
      this.history.add(estimate * 0.75);
      this.history.add(estimate * 1.25);
    } else if (now >= last && this.phiAt(now) < this.options.threshold) {
      this.history.add(now - last);
    }
    this.last = now;
  }

  /** The current suspicion level, >= 0 (possibly Infinity); 0 before the first heartbeat. */
  phi(): number {
    return this.phiAt(this.clock.now());
  }

  /** Whether phi() is below the threshold. True before the first heartbeat (see the class comment). */
  isAvailable(): boolean {
    return this.phi() < this.options.threshold;
  }

  /** Whether at least one heartbeat was recorded. */
  isMonitoring(): boolean {
    return this.last !== undefined;
  }

  /** Clock time of the latest heartbeat, or undefined before the first. */
  get lastHeartbeatAt(): number | undefined {
    return this.last;
  }

  /** The fitted distribution (mean includes the acceptable pause), for logs and metrics. */
  stats(): { samples: number; meanMs: number; stdDeviationMs: number } | undefined {
    if (this.last === undefined) return undefined;
    return { samples: this.history.count, meanMs: this.meanMs(), stdDeviationMs: this.stdDeviationMs() };
  }

  private phiAt(now: number): number {
    if (this.last === undefined) return 0;
    return phiOf(now - this.last, this.meanMs(), this.stdDeviationMs());
  }

  private meanMs(): number {
    return this.history.mean + this.options.acceptableHeartbeatPauseMs;
  }

  private stdDeviationMs(): number {
    return Math.max(this.history.stdDeviation, this.options.minStdDeviationMs);
  }
}

/**
 * One PhiAccrualDetector per peer, created on the peer's first heartbeat (or `watch`), all with the
 * same clock and options. A peer the registry has never heard of is available with phi 0, as in
 * Akka's DefaultFailureDetectorRegistry. Owned by one node's membership loop; not shared between nodes.
 */
export class FailureDetectorRegistry {
  /** The checked options every detector of this registry uses. */
  readonly options: Readonly<PhiOptions>;
  private readonly detectors = new Map<string, PhiAccrualDetector>();

  /** Throws RangeError for bad options (see phiOptions), at once rather than at the first heartbeat. */
  constructor(
    private readonly clock: Clock,
    options: Partial<PhiOptions> = {},
  ) {
    this.options = phiOptions(options);
  }

  /** Records a heartbeat from `peer` now, starting to monitor it if this is the first. */
  heartbeat(peer: string): void {
    this.detector(peer).heartbeat();
  }

  /**
   * Starts monitoring `peer` as if a heartbeat had arrived now, unless it is already monitored (then
   * nothing changes). Call it when a peer enters the view, so one that never speaks is still detected.
   */
  watch(peer: string): void {
    const d = this.detector(peer);
    if (!d.isMonitoring()) d.heartbeat();
  }

  /** The peer's current phi; 0 for a peer not monitored. */
  phi(peer: string): number {
    return this.detectors.get(peer)?.phi() ?? 0;
  }

  /** Whether the peer's phi is below the threshold; true for a peer not monitored. */
  isAvailable(peer: string): boolean {
    return this.detectors.get(peer)?.isAvailable() ?? true;
  }

  /** Clock time of the peer's latest heartbeat, or undefined for a peer not monitored. */
  lastHeartbeatAt(peer: string): number | undefined {
    return this.detectors.get(peer)?.lastHeartbeatAt;
  }

  /** Whether the registry monitors `peer`. */
  isMonitoring(peer: string): boolean {
    return this.detectors.get(peer)?.isMonitoring() ?? false;
  }

  /** Stops monitoring `peer` and forgets its history; a later heartbeat starts afresh. Returns whether it was monitored. */
  remove(peer: string): boolean {
    return this.detectors.delete(peer);
  }

  /** The monitored peers, sorted. */
  peers(): string[] {
    return [...this.detectors.keys()].sort();
  }

  /** The monitored peers that are not available now, sorted. */
  unavailable(): string[] {
    return this.peers().filter((p) => !this.isAvailable(p));
  }

  private detector(peer: string): PhiAccrualDetector {
    let d = this.detectors.get(peer);
    if (d === undefined) {
      d = new PhiAccrualDetector(this.clock, this.options);
      this.detectors.set(peer, d);
    }
    return d;
  }
}
