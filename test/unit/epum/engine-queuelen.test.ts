import { describe, expect, it } from 'vitest';
import { queuelenEngine, type QueuelenState } from '../../../src/actors/epum/engine-queuelen.js';
import {
  mergeEngineConf,
  parseEngineConf,
  type EngineAction,
  type EngineInstance,
  type SensorReadings,
} from '../../../src/actors/epum/engine.js';

const T0 = 1_700_000_000_000;
const NOW = T0 + 60_000;

function inst(id: string, over: Partial<EngineInstance> = {}): EngineInstance {
  return { id, state: 'RUNNING', health: 'OK', site: 'local', deployable_type: 'worker', launch_time: T0, vars: {}, ...over };
}

/** n RUNNING instances launched one ms apart, so the last is the newest. */
function running(n: number): EngineInstance[] {
  return Array.from({ length: n }, (_, k) => inst(`i${k}`, { launch_time: T0 + k }));
}

const queue = (length: number): SensorReadings => ({ jobs: [{ time: NOW - 1_000, value: length }] });

const base = { queue: 'jobs', high_water: 10, low_water: 2, min_instances: 0, max_instances: 5, deployable_type: 'worker', site: 'local' };

const launch = (count: number): EngineAction => ({ type: 'launch', site: 'local', deployable_type: 'worker', count, vars: {} });
const destroy = (...ids: string[]): EngineAction => ({ type: 'destroy', instance_ids: ids });

type Case = {
  name: string;
  conf?: Record<string, unknown>;
  target: number;
  instances: EngineInstance[];
  sensors: SensorReadings;
  actions: EngineAction[];
  next: number;
};

const cases: Case[] = [
  // grow
  { name: 'grow: above high water adds one', target: 2, instances: running(2), sensors: queue(11), actions: [launch(1)], next: 3 },
  { name: 'grow: adds only one however long the queue', target: 1, instances: running(1), sensors: queue(10_000), actions: [launch(1)], next: 2 },
  { name: 'grow: never past max_instances', target: 5, instances: running(5), sensors: queue(100), actions: [], next: 5 },
  {
    name: 'grow: work queued with no instance starts one even below high water',
    target: 0,
    instances: [],
    sensors: queue(1),
    actions: [launch(1)],
    next: 1,
  },
  // steady
  { name: 'steady: between the marks nothing changes', target: 3, instances: running(3), sensors: queue(5), actions: [], next: 3 },
  { name: 'steady: exactly at high water is not above it', target: 3, instances: running(3), sensors: queue(10), actions: [], next: 3 },
  { name: 'steady: exactly at low water is not below it', target: 3, instances: running(3), sensors: queue(2), actions: [], next: 3 },
  { name: 'steady: empty queue and no instances', target: 0, instances: [], sensors: queue(0), actions: [], next: 0 },
  // shrink
  { name: 'shrink: below low water removes the newest one', target: 3, instances: running(3), sensors: queue(1), actions: [destroy('i2')], next: 2 },
  { name: 'shrink: never below min_instances', conf: { ...base, min_instances: 2 }, target: 2, instances: running(2), sensors: queue(0), actions: [], next: 2 },
  { name: 'shrink: never to zero while work is queued', target: 1, instances: running(1), sensors: queue(1), actions: [], next: 1 },
  { name: 'shrink: to zero once the queue is empty', target: 1, instances: running(1), sensors: queue(0), actions: [destroy('i0')], next: 0 },
  // pending
  {
    name: 'pending: no decision above high water while an instance comes up',
    target: 2,
    instances: [inst('a'), inst('b', { state: 'PENDING' })],
    sensors: queue(50),
    actions: [],
    next: 2,
  },
  {
    name: 'pending: no decision below low water either',
    target: 2,
    instances: [inst('a'), inst('b', { state: 'STARTED' })],
    sensors: queue(0),
    actions: [],
    next: 2,
  },
  {
    name: 'pending: min_instances is still kept',
    conf: { ...base, min_instances: 3 },
    target: 3,
    instances: [inst('a'), inst('b', { state: 'REQUESTING' })],
    sensors: queue(50),
    actions: [launch(1)],
    next: 3,
  },
  // unhealthy
  {
    name: 'unhealthy: a MISSING instance is destroyed and replaced at once',
    target: 2,
    instances: [inst('a'), inst('b', { health: 'MISSING' })],
    sensors: queue(5),
    actions: [destroy('b'), launch(1)],
    next: 2,
  },
  {
    name: 'failed: a FAILED instance is replaced without waiting for high water',
    target: 2,
    instances: [inst('a'), inst('b', { state: 'FAILED' })],
    sensors: queue(5),
    actions: [launch(1)],
    next: 2,
  },
  // readings
  { name: 'no reading: the target is kept', target: 2, instances: running(2), sensors: {}, actions: [], next: 2 },
  {
    name: 'readings: the latest sample decides, whatever the order',
    target: 2,
    instances: running(2),
    sensors: { jobs: [{ time: NOW - 1_000, value: 50 }, { time: NOW - 5_000, value: 0 }] },
    actions: [launch(1)],
    next: 3,
  },
  {
    name: 'readings: another queue is not looked at',
    target: 2,
    instances: running(2),
    sensors: { other: [{ time: NOW, value: 50 }] },
    actions: [],
    next: 2,
  },
  {
    name: 'max_instances 0 holds even with work queued',
    conf: { ...base, max_instances: 0 },
    target: 0,
    instances: [],
    sensors: queue(5),
    actions: [],
    next: 0,
  },
];

function decide(rawConf: Record<string, unknown>, state: QueuelenState, instances: EngineInstance[], sensors: SensorReadings) {
  const conf = parseEngineConf(queuelenEngine, rawConf);
  return queuelenEngine.decide({ conf, state, instances, sensors, now: NOW });
}

describe('queuelen engine', () => {
  it.each(cases)('$name', ({ conf, target, instances, sensors, actions, next }) => {
    const decision = decide(conf ?? base, { target }, instances, sensors);
    expect(decision.actions).toEqual(actions);
    expect(decision.state).toEqual({ target: next });
  });

  it('a new domain starts at min_instances', () => {
    const conf = parseEngineConf(queuelenEngine, { ...base, min_instances: 2 });
    const state = queuelenEngine.initialState(conf);
    expect(state).toEqual({ target: 2 });
    expect(queuelenEngine.decide({ conf, state, instances: [], sensors: {}, now: NOW }).actions).toEqual([launch(2)]);
  });

  it.each([
    { name: 'a lower max_instances shrinks a larger target at once', patch: { max_instances: 2 }, actions: [destroy('i3', 'i2')], next: 2 },
    { name: 'a higher min_instances grows a smaller target at once', patch: { min_instances: 5 }, actions: [launch(1)], next: 5 },
    { name: 'a lower high_water applies to the current reading', patch: { high_water: 4 }, actions: [launch(1)], next: 5 },
  ])('reconfigure: $name', ({ patch, actions, next }) => {
    const decision = decide(mergeEngineConf(base, patch), { target: 4 }, running(4), queue(5));
    expect(decision.actions).toEqual(actions);
    expect(decision.state).toEqual({ target: next });
  });

  it('reconfigure: a lower max_instances applies even while no decision is made (an instance is pending)', () => {
    const instances = [...running(3), inst('p', { state: 'PENDING', launch_time: T0 + 10 })];
    const decision = decide(mergeEngineConf(base, { max_instances: 2 }), { target: 4 }, instances, queue(50));
    expect(decision.actions).toEqual([destroy('p', 'i2')]);
    expect(decision.state).toEqual({ target: 2 });
  });
});
