/**
 * The HA policies, table-driven on a fake clock (times are plain numbers): what each decides and
 * which state the service is in, as the original epu's NPreservingPolicy and SensorPolicy define them.
 */
import { describe, expect, it } from 'vitest';
import { decide, judgeFailures, sampleValue, NPreservingSchema, SensorSchema, type HaProcess, type HaState, type PolicyInput } from '../../../../src/actors/ha/policy.js';

const procs = (...states: HaProcess['state'][]): HaProcess[] => states.map((state, i) => ({ upid: `s-${i + 1}`, state }));
const input = (processes: HaProcess[], over: Partial<PolicyInput> = {}): PolicyInput => ({ processes, samples: [], now: 100_000, lastScaleAt: 0, status: 'PENDING', ...over });

describe('npreserving', () => {
  const cases: Array<{ what: string; n: number; processes: HaProcess[]; status?: HaState; schedule: number; terminate: string[]; expect: HaState }> = [
    { what: 'nothing yet: schedules n', n: 2, processes: [], schedule: 2, terminate: [], expect: 'PENDING' },
    { what: 'scheduled, none running', n: 2, processes: procs('SCHEDULING', 'WAITING'), schedule: 0, terminate: [], expect: 'PENDING' },
    { what: 'one running of two', n: 2, processes: procs('RUNNING', 'PENDING'), schedule: 0, terminate: [], expect: 'READY' },
    { what: 'all running', n: 2, processes: procs('RUNNING', 'RUNNING'), schedule: 0, terminate: [], expect: 'STEADY' },
    { what: 'a failed one is replaced', n: 2, processes: procs('RUNNING', 'FAILED'), status: 'STEADY', schedule: 1, terminate: [], expect: 'READY' },
    { what: 'terminating ones do not count', n: 1, processes: procs('TERMINATING'), schedule: 1, terminate: [], expect: 'PENDING' },
    { what: 'too many: the not running go first', n: 1, processes: procs('RUNNING', 'PENDING', 'RUNNING'), schedule: 0, terminate: ['s-2', 's-1'], expect: 'READY' },
    { what: 'preserve_n 0 with none is STEADY', n: 0, processes: [], schedule: 0, terminate: [], expect: 'STEADY' },
    { what: 'FAILED is sticky', n: 2, processes: procs('RUNNING', 'RUNNING'), status: 'FAILED', schedule: 0, terminate: [], expect: 'FAILED' },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const d = decide('npreserving', { preserve_n: c.n }, input(c.processes, c.status ? { status: c.status } : {}));
      expect({ schedule: d.schedule, terminate: d.terminate, status: d.status }).toEqual({ schedule: c.schedule, terminate: c.terminate, status: c.expect });
    });
  }
});

describe('sensor', () => {
  const params = SensorSchema.parse({ metric: 'stream:s/q', minimum: 1, maximum: 4, scale_up_threshold: 10, scale_up_n: 2, scale_down_threshold: 2, scale_down_n: 1, cooldown_period: 30, sample_period: 60 });
  const at = (value: number, time = 99_000) => [{ time, value }];
  const cases: Array<{ what: string; processes: HaProcess[]; samples: Array<{ time: number; value: number }>; lastScaleAt?: number; schedule: number; terminate: number; status: HaState; scaled: boolean }> = [
    { what: 'no reading: keeps the minimum', processes: [], samples: [], schedule: 1, terminate: 0, status: 'PENDING', scaled: true },
    { what: 'above the threshold: scales up by scale_up_n', processes: procs('RUNNING'), samples: at(20), schedule: 2, terminate: 0, status: 'READY', scaled: true },
    { what: 'never above the maximum', processes: procs('RUNNING', 'RUNNING', 'RUNNING'), samples: at(20), schedule: 1, terminate: 0, status: 'READY', scaled: true },
    { what: 'between the thresholds: nothing, STEADY', processes: procs('RUNNING', 'RUNNING'), samples: at(5), schedule: 0, terminate: 0, status: 'STEADY', scaled: false },
    { what: 'below: scales down by scale_down_n', processes: procs('RUNNING', 'RUNNING', 'RUNNING'), samples: at(0), schedule: 0, terminate: 1, status: 'READY', scaled: true },
    { what: 'never below the minimum', processes: procs('RUNNING'), samples: at(0), schedule: 0, terminate: 0, status: 'STEADY', scaled: false },
    { what: 'inside the cooldown: nothing', processes: procs('RUNNING'), samples: at(20), lastScaleAt: 80_000, schedule: 0, terminate: 0, status: 'STEADY', scaled: false },
    { what: 'after the cooldown: scales', processes: procs('RUNNING'), samples: at(20), lastScaleAt: 60_000, schedule: 2, terminate: 0, status: 'READY', scaled: true },
    { what: 'samples older than sample_period are not read', processes: procs('RUNNING', 'RUNNING'), samples: at(20, 10_000), schedule: 0, terminate: 0, status: 'STEADY', scaled: false },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const d = decide('sensor', params, input(c.processes, { samples: c.samples, ...(c.lastScaleAt !== undefined && { lastScaleAt: c.lastScaleAt }) }));
      expect({ schedule: d.schedule, terminate: d.terminate.length, status: d.status, scaled: d.scaled }).toEqual({
        schedule: c.schedule,
        terminate: c.terminate,
        status: c.status,
        scaled: c.scaled,
      });
    });
  }

  it('sample functions', () => {
    const samples = [
      { time: 1, value: 1 },
      { time: 2, value: 5 },
      { time: 3, value: 3 },
    ];
    expect([sampleValue(samples, 'average', 10, 3), sampleValue(samples, 'max', 10, 3), sampleValue(samples, 'min', 10, 3)]).toEqual([3, 5, 1]);
    expect(sampleValue(samples, 'max', 1, 3)).toBe(5);
    expect(sampleValue([], 'min', 10, 3)).toBeUndefined();
  });
});

describe('parameters and failures', () => {
  it.each([
    [NPreservingSchema, { preserve_n: -1 }, 'preserve_n'],
    [NPreservingSchema, { preserve_n: 1, extra: 1 }, 'extra'],
    [SensorSchema, { metric: 'a/b', minimum: 3, maximum: 1, scale_up_threshold: 1, scale_down_threshold: 0 }, 'maximum'],
    [SensorSchema, { metric: 'a/b', minimum: 0, maximum: 1, scale_up_threshold: 1, scale_down_threshold: 0, sample_function: 'sum' }, 'sample_function'],
  ])('%# refuses bad parameters naming the field', (schema, params, field) => {
    const r = schema.safeParse(params);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toContain(field);
  });

  it('counts failures in a row, reset by a process reaching RUNNING', () => {
    expect(judgeFailures(2, 1, false, 3)).toEqual({ failures: 3, failed: true });
    expect(judgeFailures(2, 0, true, 3)).toEqual({ failures: 0, failed: false });
    expect(judgeFailures(9, 1, false, 0)).toEqual({ failures: 10, failed: false });
  });
});
