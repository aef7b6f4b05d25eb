import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { SIM_TEST_PRESET, SimCloud, type SimCloudOptions, type SimHeartbeat } from '../../../src/iaas/sim-cloud.js';
import { IaasFullError, IaasUnavailableError } from '../../../src/iaas/driver-errors.js';
import type { DriverInstance } from '../../../src/iaas/driver.js';
import { InvalidArgumentError } from '../../../src/errors.js';

function cloud(settings: Partial<SimCloudOptions> = {}): { clock: FakeClock; cloud: SimCloud } {
  const clock = new FakeClock();
  return { clock, cloud: new SimCloud({ ...SIM_TEST_PRESET, ...settings }, { clock }) };
}

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const stateOf = (c: SimCloud, id: string) => c.get(id)?.state;

describe('SimCloud boot', () => {
  it('launches pending, starts after the boot latency and runs after contextualization', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 100, contextualizeMs: 50 });
    const [launched] = c.launch(['a']);
    expect(launched).toMatchObject({ instanceId: 'a', state: 'pending', launchedAt: clock.now() });
    clock.advance(99);
    expect(stateOf(c, 'a')).toBe('pending');
    clock.advance(1);
    expect(stateOf(c, 'a')).toBe('started');
    clock.advance(49);
    expect(stateOf(c, 'a')).toBe('started');
    clock.advance(1);
    expect(c.get('a')).toMatchObject({ state: 'running', since: clock.now() });
  });

  it('reports each transition to watchers, in order', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 10 });
    const seen: string[] = [];
    c.watch((i) => seen.push(`${i.instanceId}:${i.state}`));
    c.launch(['a', 'b']);
    clock.advance(10);
    c.terminate(['a']);
    expect(seen).toEqual(['a:started', 'a:running', 'b:started', 'b:running', 'a:terminated']);
  });

  it('a launch override of the boot latency applies to that launch only', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 100 });
    c.launch(['slow']);
    c.launch(['fast'], { bootLatencyMs: 5 });
    clock.advance(5);
    expect([stateOf(c, 'fast'), stateOf(c, 'slow')]).toEqual(['running', 'pending']);
  });

  it('adds a boot jitter below bootJitterMs', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 10, bootJitterMs: 1_000, seed: 3 });
    c.launch(ids('j', 50));
    clock.advance(10);
    expect(c.counts().pending).toBeGreaterThan(0);
    clock.advance(999);
    expect(c.counts().running).toBe(50);
  });

  it('fails the same instances on every run with the same seed, at about the failure rate', () => {
    const run = (seed: number): string[] => {
      const { clock, cloud: c } = cloud({ failureRate: 0.3, seed });
      c.launch(ids('i', 200));
      clock.advance(SIM_TEST_PRESET.bootLatencyMs);
      return c.list().filter((i) => i.state === 'failed').map((i) => i.instanceId);
    };
    const failed = run(7);
    expect(run(7)).toEqual(failed);
    expect(run(8)).not.toEqual(failed);
    expect(failed.length).toBeGreaterThan(30);
    expect(failed.length).toBeLessThan(90);
  });

  it('a failed boot is final, with the reason', () => {
    const { clock, cloud: c } = cloud({ failureRate: 1 });
    c.launch(['a']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(c.get('a')).toMatchObject({ state: 'failed', reason: 'IAAS_BOOT_FAILED' });
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs * 3);
    expect(c.get('a')?.state).toBe('failed');
  });

  it('rejects bad settings naming the field', () => {
    expect(() => new SimCloud({ failureRate: 2 })).toThrow(InvalidArgumentError);
    expect(() => new SimCloud({ failureRate: 2 })).toThrow(/failureRate must be between 0 and 1/);
    expect(() => new SimCloud({ bootLatencyMs: -1 })).toThrow(/bootLatencyMs: bootLatencyMs must be >= 0/);
    expect(() => new SimCloud({ bootLatncyMs: 1 } as Partial<SimCloudOptions>)).toThrow(/unknown field "bootLatncyMs"/);
  });
});

describe('SimCloud launch and terminate', () => {
  it('is idempotent by instance id', () => {
    const { clock, cloud: c } = cloud();
    c.launch(['a']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    const again = c.launch(['a', 'b']);
    expect(again.map((i) => [i.instanceId, i.state])).toEqual([
      ['a', 'running'],
      ['b', 'pending'],
    ]);
    expect(c.list()).toHaveLength(2);
  });

  it('refuses a whole launch past capacity with IAAS_FULL and launches none of it', () => {
    const { cloud: c } = cloud({ capacity: 3 });
    c.launch(['a', 'b']);
    const err = (() => {
      try {
        c.launch(['b', 'c', 'd']);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(IaasFullError);
    expect(err).toMatchObject({ reason: 'IAAS_FULL', code: 'RESOURCE_EXHAUSTED', retryable: true, instanceIds: ['c', 'd'] });
    expect(c.list().map((i) => i.instanceId).sort()).toEqual(['a', 'b']);
    // Ids it holds already do not count: this launch adds one.
    expect(c.launch(['a', 'c']).map((i) => i.state)).toEqual(['pending', 'pending']);
  });

  it('frees capacity when instances terminate, fail or vanish', () => {
    const { clock, cloud: c } = cloud({ capacity: 2, failureRate: 0 });
    c.launch(['a', 'b']);
    expect(() => c.launch(['c'])).toThrow(IaasFullError);
    c.terminate(['a']);
    c.launch(['c']);
    c.kill('b');
    c.launch(['d']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(c.counts()).toMatchObject({ running: 2, terminated: 1 });
  });

  it('terminates at once; terminating again or an unknown id is fine', () => {
    const { clock, cloud: c } = cloud();
    c.launch(['a']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(c.terminate(['a'])[0]).toMatchObject({ state: 'terminated', reason: 'TERMINATE_REQUESTED', since: clock.now() });
    expect(c.terminate(['a', 'nope'])).toMatchObject([
      { instanceId: 'a', state: 'terminated', reason: 'TERMINATE_REQUESTED' },
      { instanceId: 'nope', state: 'terminated', reason: 'NOT_FOUND' },
    ]);
  });

  it('a pending instance terminated before it booted never starts', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 100 });
    const seen: DriverInstance[] = [];
    c.watch((i) => seen.push(i));
    c.launch(['a']);
    c.terminate(['a']);
    clock.advance(500);
    expect(c.get('a')?.state).toBe('terminated');
    expect(seen.map((i) => i.state)).toEqual(['terminated']);
  });

  it('lists final instances for retainFinalMs, then forgets them (and the id may be launched again)', () => {
    const { clock, cloud: c } = cloud({ retainFinalMs: 1_000 });
    c.launch(['a']);
    c.terminate(['a']);
    expect(c.launch(['a'])[0]?.state).toBe('terminated');
    clock.advance(999);
    expect(c.get('a')?.state).toBe('terminated');
    clock.advance(1);
    expect(c.get('a')).toBeUndefined();
    expect(c.launch(['a'])[0]?.state).toBe('pending');
  });

  it('injected API failures refuse the next calls and change nothing', () => {
    const { cloud: c } = cloud();
    c.failNextCalls(2);
    expect(() => c.launch(['a'])).toThrow(IaasUnavailableError);
    expect(() => c.terminate(['a'])).toThrow(expect.objectContaining({ reason: 'IAAS_UNAVAILABLE', retryable: true }));
    expect(c.list()).toEqual([]);
    expect(c.launch(['a'])[0]?.state).toBe('pending');
  });
});

describe('SimCloud heartbeats', () => {
  function beats(c: SimCloud): SimHeartbeat[] {
    const out: SimHeartbeat[] = [];
    c.onHeartbeat((b) => out.push(b));
    return out;
  }

  it('each running instance heartbeats every interval, from when it runs', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 10, heartbeatIntervalMs: 100 });
    const got = beats(c);
    const t0 = clock.now();
    c.launch(['a']);
    clock.advance(10);
    expect(got).toEqual([]);
    clock.advance(300);
    expect(got).toEqual([
      { instanceId: 'a', at: t0 + 110 },
      { instanceId: 'a', at: t0 + 210 },
      { instanceId: 'a', at: t0 + 310 },
    ]);
  });

  it('pending, started and final instances do not heartbeat', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 1_000, contextualizeMs: 1_000, heartbeatIntervalMs: 100 });
    const got = beats(c);
    c.launch(['a', 'b']);
    clock.advance(1_500);
    c.terminate(['b']);
    clock.advance(500);
    expect(got).toEqual([]);
    clock.advance(100);
    expect(got.map((b) => b.instanceId)).toEqual(['a']);
  });

  it('a killed instance vanishes: no longer listed, no heartbeat, no event', () => {
    const { clock, cloud: c } = cloud();
    const got = beats(c);
    c.launch(['a', 'b']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    const events: DriverInstance[] = [];
    c.watch((i) => events.push(i));
    expect(c.kill('a')).toBe(true);
    expect(c.kill('a')).toBe(false);
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs * 2);
    expect(c.list().map((i) => i.instanceId)).toEqual(['b']);
    expect(new Set(got.map((b) => b.instanceId))).toEqual(new Set(['b']));
    expect(events).toEqual([]);
  });

  it('a silenced instance stays listed as running but stops heartbeating', () => {
    const { clock, cloud: c } = cloud();
    const got = beats(c);
    c.launch(['a', 'b']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs + SIM_TEST_PRESET.heartbeatIntervalMs);
    expect(got.map((b) => b.instanceId)).toEqual(['a', 'b']);
    c.silence('a');
    got.length = 0;
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs * 3);
    expect(got.map((b) => b.instanceId)).toEqual(['b', 'b', 'b']);
    expect(c.get('a')?.state).toBe('running');
  });

  it('an injected zombie is listed as running and heartbeats, and can be terminated', () => {
    const { clock, cloud: c } = cloud({ capacity: 1 });
    const got = beats(c);
    expect(c.injectZombie('z')).toMatchObject({ instanceId: 'z', state: 'running' });
    expect(() => c.launch(['a'])).toThrow(IaasFullError);
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs);
    expect(got.map((b) => b.instanceId)).toEqual(['z']);
    c.terminate(['z']);
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs * 2);
    expect(got).toHaveLength(1);
  });

  it('heartbeats are off with an interval of 0', () => {
    const { clock, cloud: c } = cloud({ heartbeatIntervalMs: 0 });
    const got = beats(c);
    c.launch(['a']);
    clock.advance(10_000);
    expect(c.get('a')?.state).toBe('running');
    expect(got).toEqual([]);
    expect(clock.timerCount).toBe(0);
  });

  it('a listener may terminate or kill instances while events are delivered', () => {
    const { clock, cloud: c } = cloud();
    c.watch((i) => {
      if (i.instanceId === 'a' && i.state === 'started') c.terminate(['a']);
      if (i.instanceId === 'b' && i.state === 'started') c.kill('b');
    });
    c.onHeartbeat((b) => void c.kill(b.instanceId));
    c.launch(['a', 'b', 'c']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(c.list().map((i) => [i.instanceId, i.state])).toEqual([
      ['a', 'terminated'],
      ['c', 'running'],
    ]);
    clock.advance(SIM_TEST_PRESET.heartbeatIntervalMs);
    expect(c.list().map((i) => i.instanceId)).toEqual(['a']);
  });

  it('a listener that throws does not stop the others', () => {
    const { clock, cloud: c } = cloud();
    c.onHeartbeat(() => {
      throw new Error('boom');
    });
    const got = beats(c);
    c.launch(['a']);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs + SIM_TEST_PRESET.heartbeatIntervalMs);
    expect(got).toHaveLength(1);
  });

  it('stop() cancels its timer and refuses further calls', () => {
    const { clock, cloud: c } = cloud();
    c.launch(['a']);
    c.stop();
    expect(clock.timerCount).toBe(0);
    expect(() => c.launch(['b'])).toThrow(/stopped/);
  });
});

describe('SimCloud at scale', () => {
  it('brings 10,000 instances to running on one timer, and heartbeats each of them', () => {
    const { clock, cloud: c } = cloud({ bootLatencyMs: 50, bootJitterMs: 500, heartbeatIntervalMs: 1_000 });
    let beatCount = 0;
    const beating = new Set<string>();
    c.onHeartbeat((b) => {
      beatCount++;
      beating.add(b.instanceId);
    });
    for (let batch = 0; batch < 100; batch++) c.launch(ids(`d${batch}`, 100));
    // One timer for the whole cloud, however many instances it holds.
    expect(clock.timerCount).toBe(1);
    clock.advance(550);
    expect(c.counts()).toMatchObject({ pending: 0, running: 10_000 });
    expect(clock.timerCount).toBe(1);
    clock.advance(1_000);
    expect(beating.size).toBe(10_000);
    expect(beatCount).toBe(10_000);
  });
});
