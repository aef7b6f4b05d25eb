import { describe, expect, it } from 'vitest';
import { sensorEngine, type SensorState } from '../../../src/actors/epum/engine-sensor.js';
import {
  mergeEngineConf,
  parseEngineConf,
  type EngineAction,
  type EngineInstance,
  type SensorReadings,
} from '../../../src/actors/epum/engine.js';

const T0 = 1_700_000_000_000;
const NOW = T0 + 600_000;

function inst(id: string, over: Partial<EngineInstance> = {}): EngineInstance {
  return { id, state: 'RUNNING', health: 'OK', site: 'local', deployable_type: 'worker', launch_time: T0, vars: {}, ...over };
}

function running(n: number): EngineInstance[] {
  return Array.from({ length: n }, (_, k) => inst(`i${k}`, { launch_time: T0 + k }));
}

/** Samples of "load", the k-th taken k seconds before now. */
function load(...values: number[]): SensorReadings {
  return { load: values.map((value, k) => ({ time: NOW - (k + 1) * 1_000, value })) };
}

const base = {
  metric: 'load',
  sample_function: 'average',
  scale_up_threshold: 0.8,
  scale_up_n: 2,
  scale_down_threshold: 0.2,
  scale_down_n: 1,
  minimum: 1,
  maximum: 6,
  cooldown_period: 60,
  sample_period: 60,
  deployable_type: 'worker',
  site: 'local',
};

const launch = (count: number): EngineAction => ({ type: 'launch', site: 'local', deployable_type: 'worker', count, vars: {} });
const destroy = (...ids: string[]): EngineAction => ({ type: 'destroy', instance_ids: ids });

const idle: SensorState = { target: 3, last_scale_time: null };

type Case = {
  name: string;
  conf?: Record<string, unknown>;
  state?: SensorState;
  instances?: EngineInstance[];
  sensors: SensorReadings;
  actions: EngineAction[];
  next: SensorState;
};

const cases: Case[] = [
  // grow and shrink
  { name: 'grow: average above scale_up_threshold adds scale_up_n', sensors: load(0.9, 0.95), actions: [launch(2)], next: { target: 5, last_scale_time: NOW } },
  { name: 'grow: capped at maximum', state: { target: 5, last_scale_time: null }, instances: running(5), sensors: load(0.9), actions: [launch(1)], next: { target: 6, last_scale_time: NOW } },
  {
    name: 'grow: pinned at maximum is no action and starts no cooldown',
    state: { target: 6, last_scale_time: null },
    instances: running(6),
    sensors: load(0.9),
    actions: [],
    next: { target: 6, last_scale_time: null },
  },
  { name: 'shrink: average below scale_down_threshold removes the newest', sensors: load(0.1), actions: [destroy('i2')], next: { target: 2, last_scale_time: NOW } },
  {
    name: 'shrink: never below minimum',
    state: { target: 1, last_scale_time: null },
    instances: running(1),
    sensors: load(0),
    actions: [],
    next: { target: 1, last_scale_time: null },
  },
  { name: 'steady: between the thresholds nothing changes', sensors: load(0.5, 0.3), actions: [], next: idle },
  { name: 'steady: exactly at a threshold is not past it', sensors: load(0.8), actions: [], next: idle },
  // sample functions
  { name: 'max: one hot sample scales up where the average would not', conf: { ...base, sample_function: 'max' }, sensors: load(0.1, 0.9), actions: [launch(2)], next: { target: 5, last_scale_time: NOW } },
  { name: 'min: one idle sample scales down where the average would not', conf: { ...base, sample_function: 'min' }, sensors: load(0.1, 0.7), actions: [destroy('i2')], next: { target: 2, last_scale_time: NOW } },
  { name: 'average: the same samples change nothing', sensors: load(0.1, 0.9), actions: [], next: idle },
  // which samples count
  { name: 'no samples: nothing changes', sensors: {}, actions: [], next: idle },
  {
    name: 'window: samples older than sample_period are ignored',
    sensors: { load: [{ time: NOW - 61_000, value: 0.99 }] },
    actions: [],
    next: idle,
  },
  {
    name: 'window: only the recent samples are reduced',
    sensors: { load: [{ time: NOW - 61_000, value: 0 }, { time: NOW - 59_000, value: 0.9 }] },
    actions: [launch(2)],
    next: { target: 5, last_scale_time: NOW },
  },
  {
    name: 'window: samples from after now are ignored',
    sensors: { load: [{ time: NOW + 1, value: 0.99 }] },
    actions: [],
    next: idle,
  },
  {
    name: 'per-instance samples of instances that no longer count are ignored',
    instances: [...running(3), inst('dead', { state: 'TERMINATED' })],
    sensors: { load: [{ time: NOW - 1_000, value: 0.99, instance_id: 'dead' }, { time: NOW - 1_000, value: 0.7, instance_id: 'i0' }] },
    actions: [],
    next: idle,
  },
  // cooldown
  {
    name: 'cooldown: no scaling within cooldown_period of the last action',
    state: { target: 3, last_scale_time: NOW - 30_000 },
    sensors: load(0.99),
    actions: [],
    next: { target: 3, last_scale_time: NOW - 30_000 },
  },
  {
    name: 'cooldown: scales again once cooldown_period has passed',
    state: { target: 3, last_scale_time: NOW - 60_000 },
    sensors: load(0.99),
    actions: [launch(2)],
    next: { target: 5, last_scale_time: NOW },
  },
  {
    name: 'cooldown: 0 means no cooldown',
    conf: { ...base, cooldown_period: 0 },
    state: { target: 3, last_scale_time: NOW },
    sensors: load(0.99),
    actions: [launch(2)],
    next: { target: 5, last_scale_time: NOW },
  },
  {
    name: 'cooldown: an unhealthy instance is still replaced within it',
    state: { target: 3, last_scale_time: NOW - 1_000 },
    instances: [inst('a'), inst('b', { health: 'PROCESS_ERROR' }), inst('c')],
    sensors: load(0.5),
    actions: [destroy('b'), launch(1)],
    next: { target: 3, last_scale_time: NOW - 1_000 },
  },
  // pending and failures
  {
    name: 'pending instances count toward the target',
    instances: [inst('a'), inst('b', { state: 'REQUESTING' }), inst('c', { state: 'PENDING' })],
    sensors: load(0.5),
    actions: [],
    next: idle,
  },
  {
    name: 'failed instances are replaced to keep the target',
    instances: [inst('a'), inst('b', { state: 'FAILED' }), inst('c', { state: 'RUNNING_FAILED' })],
    sensors: load(0.5),
    actions: [destroy('c'), launch(2)],
    next: idle,
  },
];

function decide(rawConf: Record<string, unknown>, state: SensorState, instances: EngineInstance[], sensors: SensorReadings) {
  const conf = parseEngineConf(sensorEngine, rawConf);
  return sensorEngine.decide({ conf, state, instances, sensors, now: NOW });
}

describe('sensor engine', () => {
  it.each(cases)('$name', ({ conf, state, instances, sensors, actions, next }) => {
    const decision = decide(conf ?? base, state ?? idle, instances ?? running(3), sensors);
    expect(decision.actions).toEqual(actions);
    expect(decision.state).toEqual(next);
  });

  it('a new domain starts at minimum with no cooldown', () => {
    const conf = parseEngineConf(sensorEngine, { ...base, minimum: 2 });
    expect(sensorEngine.initialState(conf)).toEqual({ target: 2, last_scale_time: null });
  });

  it('scales in steps separated by the cooldown as a fake clock advances', () => {
    const conf = parseEngineConf(sensorEngine, { ...base, maximum: 10 });
    let state = sensorEngine.initialState(conf);
    const targets: number[] = [];
    // Load stays high for three minutes, read every 20 s.
    for (let t = 0; t <= 180_000; t += 20_000) {
      const now = T0 + t;
      const sensors = { load: [{ time: now - 1_000, value: 0.95 }] };
      state = sensorEngine.decide({ conf, state, instances: running(state.target), sensors, now }).state;
      targets.push(state.target);
    }
    // One step at 0 s, 60 s, 120 s and 180 s: 1 -> 3 -> 5 -> 7 -> 9.
    expect(targets).toEqual([3, 3, 3, 5, 5, 5, 7, 7, 7, 9]);
  });

  it.each([
    { name: 'a lower maximum shrinks the current target', patch: { maximum: 2 }, actions: [destroy('i4', 'i3', 'i2')], target: 2 },
    { name: 'a higher minimum grows it', patch: { minimum: 6 }, actions: [launch(1)], target: 6 },
    { name: 'a longer cooldown_period extends the running cooldown', patch: { cooldown_period: 600 }, actions: [], target: 5 },
    { name: 'a shorter cooldown_period ends it', patch: { cooldown_period: 10 }, actions: [launch(1)], target: 6 },
  ])('reconfigure: $name', ({ patch, actions, target }) => {
    // The last action was 30 s ago; load is high.
    const decision = decide(mergeEngineConf(base, patch), { target: 5, last_scale_time: NOW - 30_000 }, running(5), load(0.95));
    expect(decision.actions).toEqual(actions);
    expect(decision.state.target).toBe(target);
  });
});
