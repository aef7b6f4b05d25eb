import { describe, expect, it } from 'vitest';
import {
  FailureDetectorRegistry,
  PHI_DEFAULTS,
  PHI_TEST_PRESET,
  PhiAccrualDetector,
  phiOf,
  phiOptions,
  type PhiOptions,
} from '../../../src/cluster/failure-detector.js';
import type { Clock } from '../../../src/runtime/clock.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';

/** Feeds `count` heartbeats `intervalMs` apart, the first one now. */
function beat(clock: FakeClock, detector: PhiAccrualDetector, count: number, intervalMs: number | ((i: number) => number)): void {
  for (let i = 0; i < count; i++) {
    if (i > 0) clock.advance(typeof intervalMs === 'number' ? intervalMs : intervalMs(i));
    detector.heartbeat();
  }
}

/** Milliseconds of silence after the last heartbeat until the detector first reports the peer unavailable. */
function msToUnavailable(clock: FakeClock, detector: PhiAccrualDetector, limitMs = 60_000): number {
  for (let ms = 1; ms <= limitMs; ms++) {
    clock.advance(1);
    if (!detector.isAvailable()) return ms;
  }
  throw new Error(`still available after ${limitMs} ms`);
}

describe('phi options', () => {
  it('the presets are frozen and valid', () => {
    expect(Object.isFrozen(PHI_DEFAULTS)).toBe(true);
    expect(Object.isFrozen(PHI_TEST_PRESET)).toBe(true);
    expect(phiOptions(PHI_DEFAULTS)).toEqual(PHI_DEFAULTS);
    expect(phiOptions(PHI_TEST_PRESET)).toEqual(PHI_TEST_PRESET);
  });

  it('fills missing and undefined fields from PHI_DEFAULTS', () => {
    expect(phiOptions({ threshold: 10, maxSampleSize: undefined })).toEqual({ ...PHI_DEFAULTS, threshold: 10 });
    expect(phiOptions()).toEqual(PHI_DEFAULTS);
  });

  const bad: Array<[keyof PhiOptions, number]> = [
    ['threshold', 0],
    ['threshold', -1],
    ['threshold', Number.NaN],
    ['threshold', Number.POSITIVE_INFINITY],
    ['maxSampleSize', 0],
    ['maxSampleSize', 2.5],
    ['minStdDeviationMs', 0],
    ['minStdDeviationMs', -5],
    ['acceptableHeartbeatPauseMs', -1],
    ['acceptableHeartbeatPauseMs', Number.POSITIVE_INFINITY],
    ['firstHeartbeatEstimateMs', 0],
    ['firstHeartbeatEstimateMs', Number.NaN],
  ];
  it.each(bad)('rejects %s = %s with RangeError, in the detector and the registry too', (field, value) => {
    const clock = new FakeClock();
    expect(() => phiOptions({ [field]: value })).toThrow(RangeError);
    expect(() => phiOptions({ [field]: value })).toThrow(field);
    expect(() => new PhiAccrualDetector(clock, { [field]: value })).toThrow(RangeError);
    expect(() => new FailureDetectorRegistry(clock, { [field]: value })).toThrow(RangeError);
  });

  it('accepts a zero acceptable pause', () => {
    expect(phiOptions({ acceptableHeartbeatPauseMs: 0 }).acceptableHeartbeatPauseMs).toBe(0);
  });
});

describe('phiOf', () => {
  it('is -log10(1/2) at the mean, 0 far below it and Infinity far above it', () => {
    expect(phiOf(100, 100, 10)).toBeCloseTo(Math.log10(2), 10);
    expect(phiOf(0, 1_000, 10)).toBe(0);
    expect(phiOf(10_000, 100, 10)).toBe(Number.POSITIVE_INFINITY);
  });

  it('matches the normal tail probability to within the approximation error', () => {
    // P(X > mean + k sd) for k = 0.5, 1, 2, 3.
    const tails: Array<[number, number]> = [
      [0.5, 0.3085375],
      [1, 0.1586553],
      [2, 0.0227501],
      [3, 0.0013499],
    ];
    for (const [k, tail] of tails) {
      const probability = 10 ** -phiOf(100 + 10 * k, 100, 10);
      expect(Math.abs(probability - tail)).toBeLessThan(1.5e-4);
    }
  });

  it('is non-decreasing in the elapsed time', () => {
    let previous = -1;
    for (let t = 0; t <= 1_000; t += 0.5) {
      const p = phiOf(t, 300, 50);
      expect(p).toBeGreaterThanOrEqual(previous);
      previous = p;
    }
  });
});

describe('PhiAccrualDetector', () => {
  it('before the first heartbeat: not monitoring, phi 0, available, however long it waits', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    clock.advance(3_600_000);
    expect(d.isMonitoring()).toBe(false);
    expect(d.phi()).toBe(0);
    expect(d.isAvailable()).toBe(true);
    expect(d.lastHeartbeatAt).toBeUndefined();
    expect(d.stats()).toBeUndefined();
  });

  it('the first heartbeat seeds the history around firstHeartbeatEstimateMs', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock, { firstHeartbeatEstimateMs: 1_000, minStdDeviationMs: 1, acceptableHeartbeatPauseMs: 0 });
    d.heartbeat();
    expect(d.isMonitoring()).toBe(true);
    expect(d.lastHeartbeatAt).toBe(clock.now());
    // Seeds 750 and 1250: mean 1000, deviation 250.
    expect(d.stats()).toEqual({ samples: 2, meanMs: 1_000, stdDeviationMs: 250 });
  });

  it('regular heartbeats keep phi low', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    d.heartbeat();
    for (let i = 0; i < 200; i++) {
      clock.advance(100);
      // Checked just before each heartbeat, when phi is highest.
      expect(d.phi()).toBeLessThan(0.1);
      expect(d.isAvailable()).toBe(true);
      d.heartbeat();
    }
  });

  it('silence raises phi monotonically until the peer is unavailable', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    beat(clock, d, 50, 100);
    let previous = d.phi();
    const seen: number[] = [];
    for (let ms = 1; ms <= 2_000; ms++) {
      clock.advance(1);
      const p = d.phi();
      expect(p).toBeGreaterThanOrEqual(previous);
      previous = p;
      if (ms % 100 === 0) seen.push(p);
    }
    // Strictly rising across the interesting range, then unavailable for good.
    expect(seen[2]).toBeLessThan(seen[4] as number);
    expect(seen[4]).toBeLessThan(seen[5] as number);
    expect(d.isAvailable()).toBe(false);
  });

  it('with 100 ms heartbeats and default options a silent peer crosses the threshold after the pause and well under 1 s', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    beat(clock, d, 50, 100);
    const ms = msToUnavailable(clock, d);
    expect(ms).toBeGreaterThan(PHI_DEFAULTS.acceptableHeartbeatPauseMs);
    expect(ms).toBeGreaterThan(100 + PHI_DEFAULTS.acceptableHeartbeatPauseMs);
    expect(ms).toBeLessThan(1_000);
    // The figure documented beside PHI_DEFAULTS (about 562 ms).
    expect(Math.abs(ms - 562)).toBeLessThanOrEqual(10);
  });

  it('with default options one heartbeat 350 ms late keeps phi below 1', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    beat(clock, d, 50, 100);
    clock.advance(350);
    expect(d.phi()).toBeLessThan(1);
  });

  it('with 20 ms heartbeats PHI_TEST_PRESET detects a silent peer in about 113 ms', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock, PHI_TEST_PRESET);
    beat(clock, d, 100, 20);
    const ms = msToUnavailable(clock, d);
    expect(ms).toBeGreaterThan(20 + PHI_TEST_PRESET.acceptableHeartbeatPauseMs);
    expect(Math.abs(ms - 113)).toBeLessThanOrEqual(5);
  });

  it('the first heartbeat alone is enough to detect a peer that then falls silent', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    d.heartbeat();
    expect(msToUnavailable(clock, d)).toBeLessThan(1_000);
  });

  it('irregular intervals with the same mean widen the tolerance', () => {
    const regularClock = new FakeClock();
    const regular = new PhiAccrualDetector(regularClock);
    beat(regularClock, regular, 101, 100);
    const jitteryClock = new FakeClock();
    const jittery = new PhiAccrualDetector(jitteryClock);
    // 20, 180, 20, 180 ...: mean 100, deviation 80 (above the 50 ms floor).
    beat(jitteryClock, jittery, 101, (i) => (i % 2 === 0 ? 180 : 20));
    expect(jittery.stats()?.meanMs).toBeCloseTo(regular.stats()?.meanMs as number, 0);
    expect(jittery.stats()?.stdDeviationMs).toBeGreaterThan(PHI_DEFAULTS.minStdDeviationMs);

    regularClock.advance(450);
    jitteryClock.advance(450);
    expect(jittery.phi()).toBeLessThan(regular.phi());

    const regularMs = 450 + msToUnavailable(regularClock, regular);
    const jitteryMs = 450 + msToUnavailable(jitteryClock, jittery);
    expect(jitteryMs).toBeGreaterThan(regularMs + 100);
  });

  it('min std deviation applies when heartbeats are regular', () => {
    for (const minStdDeviationMs of [10, 50, 200]) {
      const clock = new FakeClock();
      const d = new PhiAccrualDetector(clock, { minStdDeviationMs });
      beat(clock, d, 100, 100);
      const stats = d.stats();
      expect(stats?.stdDeviationMs).toBe(minStdDeviationMs);
      clock.advance(400);
      expect(d.phi()).toBeCloseTo(phiOf(400, stats?.meanMs as number, minStdDeviationMs), 12);
    }
    const times = [10, 50, 200].map((minStdDeviationMs) => {
      const clock = new FakeClock();
      const d = new PhiAccrualDetector(clock, { minStdDeviationMs });
      beat(clock, d, 100, 100);
      return msToUnavailable(clock, d);
    });
    expect(times[0]).toBeLessThan(times[1] as number);
    expect(times[1]).toBeLessThan(times[2] as number);
  });

  it('a larger acceptable pause delays detection by that much', () => {
    const time = (acceptableHeartbeatPauseMs: number): number => {
      const clock = new FakeClock();
      const d = new PhiAccrualDetector(clock, { acceptableHeartbeatPauseMs });
      beat(clock, d, 100, 100);
      return msToUnavailable(clock, d);
    };
    expect(time(1_200) - time(200)).toBeGreaterThanOrEqual(999);
    expect(time(1_200) - time(200)).toBeLessThanOrEqual(1_001);
  });

  it('does not learn the gap of a peer that was already unavailable', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    beat(clock, d, 50, 100);
    const before = d.stats();
    clock.advance(5_000);
    expect(d.isAvailable()).toBe(false);
    d.heartbeat();
    expect(d.isAvailable()).toBe(true);
    expect(d.phi()).toBeLessThan(1e-6);
    expect(d.stats()).toEqual(before);
    // Back to normal detection right away: the 5 s gap did not widen the tolerance.
    expect(msToUnavailable(clock, d)).toBeLessThan(1_000);
  });

  it('learns a late heartbeat that came while the peer was still available', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock);
    beat(clock, d, 50, 100);
    const samples = d.stats()?.samples as number;
    clock.advance(400);
    expect(d.isAvailable()).toBe(true);
    d.heartbeat();
    expect(d.stats()?.samples).toBe(samples + 1);
  });

  it('keeps only the last maxSampleSize intervals', () => {
    const clock = new FakeClock();
    const d = new PhiAccrualDetector(clock, { maxSampleSize: 10, acceptableHeartbeatPauseMs: 0 });
    beat(clock, d, 30, 100);
    expect(d.stats()?.samples).toBe(10);
    expect(d.stats()?.meanMs).toBe(100);
    // A slower rate, reached gradually so that no heartbeat comes after the peer was unavailable.
    for (let interval = 110; interval <= 300; interval += 10) {
      clock.advance(interval);
      d.heartbeat();
    }
    for (let i = 0; i < 10; i++) {
      clock.advance(300);
      d.heartbeat();
    }
    expect(d.stats()).toEqual({ samples: 10, meanMs: 300, stdDeviationMs: PHI_DEFAULTS.minStdDeviationMs });
  });

  it('a clock that goes backwards records no interval and measures the silence from the new time', () => {
    let now = 1_000_000;
    const clock: Clock = { now: () => now, setTimer: () => ({ cancel: () => undefined }) };
    const d = new PhiAccrualDetector(clock);
    for (let i = 0; i < 20; i++) {
      d.heartbeat();
      now += 100;
    }
    const before = d.stats();
    now -= 10_000;
    d.heartbeat();
    expect(d.stats()).toEqual(before);
    expect(d.lastHeartbeatAt).toBe(now);
    now += 100;
    expect(d.isAvailable()).toBe(true);
    now += 2_000;
    expect(d.isAvailable()).toBe(false);
  });
});

describe('FailureDetectorRegistry', () => {
  it('a peer it never heard of is available with phi 0 and not monitored', () => {
    const registry = new FailureDetectorRegistry(new FakeClock());
    expect(registry.phi('n1')).toBe(0);
    expect(registry.isAvailable('n1')).toBe(true);
    expect(registry.isMonitoring('n1')).toBe(false);
    expect(registry.lastHeartbeatAt('n1')).toBeUndefined();
    expect(registry.peers()).toEqual([]);
  });

  it('keeps one detector per peer, and lists peers sorted', () => {
    const clock = new FakeClock();
    const registry = new FailureDetectorRegistry(clock, PHI_DEFAULTS);
    for (let i = 0; i < 30; i++) {
      registry.heartbeat('n2');
      registry.heartbeat('n1');
      if (i < 10) registry.heartbeat('n3');
      clock.advance(100);
    }
    expect(registry.peers()).toEqual(['n1', 'n2', 'n3']);
    clock.advance(1_000);
    expect(registry.isAvailable('n3')).toBe(false);
    expect(registry.isAvailable('n1')).toBe(false);
    registry.heartbeat('n1');
    expect(registry.isAvailable('n1')).toBe(true);
    expect(registry.unavailable()).toEqual(['n2', 'n3']);
    // What a suspicion log reports as the silence: time since the peer's last heartbeat.
    expect(clock.now() - registry.lastHeartbeatAt('n2')!).toBe(1_100);
    expect(registry.phi('n2')).toBeGreaterThanOrEqual(PHI_DEFAULTS.threshold);
  });

  it('remove forgets a peer; a later heartbeat starts afresh', () => {
    const clock = new FakeClock();
    const registry = new FailureDetectorRegistry(clock);
    registry.heartbeat('n1');
    clock.advance(5_000);
    expect(registry.isAvailable('n1')).toBe(false);
    expect(registry.remove('n1')).toBe(true);
    expect(registry.remove('n1')).toBe(false);
    expect(registry.peers()).toEqual([]);
    expect(registry.isAvailable('n1')).toBe(true);
    registry.heartbeat('n1');
    expect(registry.isMonitoring('n1')).toBe(true);
    expect(registry.phi('n1')).toBeLessThan(1e-6);
  });

  it('watch detects a peer that never sends a heartbeat, and does not reset a monitored one', () => {
    const clock = new FakeClock();
    const registry = new FailureDetectorRegistry(clock);
    registry.watch('mute');
    expect(registry.isMonitoring('mute')).toBe(true);
    expect(registry.isAvailable('mute')).toBe(true);
    clock.advance(1_000);
    expect(registry.isAvailable('mute')).toBe(false);
    registry.watch('mute');
    expect(registry.isAvailable('mute')).toBe(false);
  });

  it('uses its options for every peer', () => {
    const clock = new FakeClock();
    const registry = new FailureDetectorRegistry(clock, PHI_TEST_PRESET);
    expect(registry.options).toEqual(PHI_TEST_PRESET);
    for (let i = 0; i < 50; i++) {
      registry.heartbeat('a');
      clock.advance(20);
    }
    clock.advance(200);
    expect(registry.isAvailable('a')).toBe(false);
  });
});
