import { describe, expect, it } from 'vitest';
import { npreservingEngine } from '../../../src/actors/epum/engine-npreserving.js';
import { mergeEngineConf, parseEngineConf, type EngineAction, type EngineInstance } from '../../../src/actors/epum/engine.js';

const T0 = 1_700_000_000_000;

function inst(id: string, over: Partial<EngineInstance> = {}): EngineInstance {
  return { id, state: 'RUNNING', health: 'OK', site: 'local', deployable_type: 'sleeper', launch_time: T0, vars: {}, ...over };
}

const base = { preserve_n: 3, deployable_type: 'sleeper', site: 'local' };

function decide(rawConf: Record<string, unknown>, instances: EngineInstance[]): EngineAction[] {
  const conf = parseEngineConf(npreservingEngine, rawConf);
  const decision = npreservingEngine.decide({ conf, state: npreservingEngine.initialState(conf), instances, sensors: {}, now: T0 + 60_000 });
  expect(decision.state).toEqual({});
  return decision.actions;
}

const launch = (count: number, vars: Record<string, string> = {}): EngineAction => ({
  type: 'launch',
  site: 'local',
  deployable_type: 'sleeper',
  count,
  vars,
});
const destroy = (...ids: string[]): EngineAction => ({ type: 'destroy', instance_ids: ids });

type Case = { name: string; conf?: Record<string, unknown>; instances: EngineInstance[]; actions: EngineAction[] };

const cases: Case[] = [
  // grow
  { name: 'grow: an empty domain launches preserve_n', instances: [], actions: [launch(3)] },
  { name: 'grow: launches only the deficit', instances: [inst('a')], actions: [launch(2)] },
  { name: 'steady: preserve_n running does nothing', instances: [inst('a'), inst('b'), inst('c')], actions: [] },
  { name: 'preserve_n 0 on an empty domain does nothing', conf: { ...base, preserve_n: 0 }, instances: [], actions: [] },
  // pending
  {
    name: 'pending: instances on their way up count, nothing is launched twice',
    instances: [inst('a'), inst('b', { state: 'REQUESTING' }), inst('c', { state: 'ERROR_RETRYING' })],
    actions: [],
  },
  {
    name: 'pending: REQUESTED, PENDING and STARTED count too',
    conf: { ...base, preserve_n: 4 },
    instances: [inst('a'), inst('b', { state: 'REQUESTED' }), inst('c', { state: 'PENDING' }), inst('d', { state: 'STARTED' })],
    actions: [],
  },
  // shrink
  {
    name: 'shrink: destroys the newest first',
    conf: { ...base, preserve_n: 1 },
    instances: [inst('a', { launch_time: T0 }), inst('c', { launch_time: T0 + 2 }), inst('b', { launch_time: T0 + 1 })],
    actions: [destroy('c', 'b')],
  },
  {
    name: 'shrink: retirable nodes go first, in the order listed, then the newest',
    conf: { ...base, preserve_n: 1, retirable_nodes: ['b', 'a'] },
    instances: [inst('a', { launch_time: T0 }), inst('b', { launch_time: T0 + 1 }), inst('c', { launch_time: T0 + 2 })],
    actions: [destroy('b', 'a')],
  },
  {
    name: 'shrink: retirable ids not in the domain are ignored',
    conf: { ...base, preserve_n: 2, retirable_nodes: ['gone'] },
    instances: [inst('a', { launch_time: T0 }), inst('b', { launch_time: T0 + 1 }), inst('c', { launch_time: T0 + 2 })],
    actions: [destroy('c')],
  },
  {
    name: 'shrink: equal launch times are broken by id, whatever the input order',
    conf: { ...base, preserve_n: 1 },
    instances: [inst('b'), inst('a'), inst('c')],
    actions: [destroy('c', 'b')],
  },
  // unhealthy and failed
  ...(['MISSING', 'ZOMBIE', 'PROCESS_ERROR'] as const).map((health) => ({
    name: `unhealthy: a ${health} instance is destroyed and replaced`,
    instances: [inst('a'), inst('b', { health }), inst('c')],
    actions: [destroy('b'), launch(1)],
  })),
  {
    name: 'unhealthy: OUT_OF_CONTACT still counts and is not replaced yet',
    instances: [inst('a'), inst('b', { health: 'OUT_OF_CONTACT' }), inst('c')],
    actions: [],
  },
  {
    name: 'failed: RUNNING_FAILED is destroyed (it may hold an IaaS instance) and replaced',
    instances: [inst('a'), inst('b', { state: 'RUNNING_FAILED' }), inst('c')],
    actions: [destroy('b'), launch(1)],
  },
  ...(['FAILED', 'REJECTED', 'TERMINATED', 'TERMINATING'] as const).map((state) => ({
    name: `failed: a ${state} instance no longer counts and is replaced without a destroy`,
    instances: [inst('a'), inst('b', { state }), inst('c')],
    actions: [launch(1)],
  })),
  {
    name: 'zombie: a terminated instance heard from again is destroyed again, not replaced',
    instances: [inst('a'), inst('b'), inst('c'), inst('z', { state: 'TERMINATED', health: 'ZOMBIE' })],
    actions: [destroy('z')],
  },
  {
    name: 'unhealthy and shrink together: one destroy lists both',
    conf: { ...base, preserve_n: 1 },
    instances: [inst('a', { launch_time: T0 }), inst('b', { launch_time: T0 + 1 }), inst('m', { health: 'MISSING' })],
    actions: [destroy('m', 'b')],
  },
  // unique values
  {
    name: 'unique: each launch gets its own value; instances beyond the values get none',
    conf: { ...base, unique_values: ['x', 'y'] },
    instances: [],
    actions: [launch(1, { unique_value: 'x' }), launch(1, { unique_value: 'y' }), launch(1)],
  },
  {
    name: 'unique: values held by live instances are not handed out again',
    conf: { ...base, unique_values: ['x', 'y', 'z'] },
    instances: [inst('a', { vars: { unique_value: 'x' } })],
    actions: [launch(1, { unique_value: 'y' }), launch(1, { unique_value: 'z' })],
  },
  {
    name: 'unique: a replacement reuses the value of the instance it replaces, not the first free one',
    conf: { ...base, preserve_n: 2, unique_values: ['x', 'y', 'z'] },
    instances: [inst('a', { vars: { unique_value: 'y' } }), inst('b', { state: 'FAILED', vars: { unique_value: 'z' } })],
    actions: [launch(1, { unique_value: 'z' })],
  },
  {
    name: 'unique: an unhealthy instance is destroyed and its value goes to its replacement',
    conf: { ...base, preserve_n: 2, unique_values: ['x', 'y', 'z'] },
    instances: [inst('a', { vars: { unique_value: 'x' } }), inst('b', { health: 'MISSING', vars: { unique_value: 'z' } })],
    actions: [destroy('b'), launch(1, { unique_value: 'z' })],
  },
  {
    name: 'unique: of two lost holders of one value, the value is handed out once',
    conf: { ...base, preserve_n: 2, unique_values: ['x', 'y'] },
    instances: [
      inst('a', { state: 'FAILED', launch_time: T0, vars: { unique_value: 'y' } }),
      inst('b', { state: 'FAILED', launch_time: T0 + 1, vars: { unique_value: 'y' } }),
    ],
    actions: [launch(1, { unique_value: 'y' }), launch(1, { unique_value: 'x' })],
  },
  {
    name: 'unique: a value no longer configured is not reused',
    conf: { ...base, preserve_n: 1, unique_values: ['x'] },
    instances: [inst('b', { state: 'FAILED', vars: { unique_value: 'old' } })],
    actions: [launch(1, { unique_value: 'x' })],
  },
  {
    name: 'unique: the variable name comes from unique_key',
    conf: { ...base, preserve_n: 1, unique_values: ['x'], unique_key: 'shard' },
    instances: [],
    actions: [launch(1, { shard: 'x' })],
  },
];

describe('npreserving engine', () => {
  it.each(cases)('$name', ({ conf, instances, actions }) => {
    expect(decide(conf ?? base, instances)).toEqual(actions);
  });

  describe('reconfigure: the merged conf applies to the running domain on the next decide', () => {
    const before = { ...base, unique_values: ['x', 'y', 'z', 'w'] };
    const running = [
      inst('a', { launch_time: T0, vars: { unique_value: 'x' } }),
      inst('b', { launch_time: T0 + 1, vars: { unique_value: 'y' } }),
      inst('c', { launch_time: T0 + 2, vars: { unique_value: 'z' } }),
    ];

    it.each([
      { name: 'a lower preserve_n terminates, retirable first', patch: { preserve_n: 1, retirable_nodes: ['a'] }, actions: [destroy('a', 'c')] },
      { name: 'a higher preserve_n launches the difference', patch: { preserve_n: 4 }, actions: [launch(1, { unique_value: 'w' })] },
      {
        name: 'a new site and deployable type apply to new launches only',
        patch: { preserve_n: 4, site: 'sim', deployable_type: 'big' },
        actions: [{ type: 'launch', site: 'sim', deployable_type: 'big', count: 1, vars: { unique_value: 'w' } } as EngineAction],
      },
      { name: 'unique_values set to null switches them off', patch: { preserve_n: 4, unique_values: null }, actions: [launch(1)] },
      { name: 'keys not in the patch keep their values', patch: { retirable_nodes: ['b'] }, actions: [] },
    ])('$name', ({ patch, actions }) => {
      expect(decide(mergeEngineConf(before, patch), running)).toEqual(actions);
    });
  });
});
