import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  EngineRegistry,
  census,
  createEngineRegistry,
  loadEngineModule,
  mergeEngineConf,
  parseEngineConf,
  pickVictims,
  type Engine,
  type EngineInput,
  type EngineInstance,
  type Json,
} from '../../../src/actors/epum/engine.js';
import { npreservingEngine } from '../../../src/actors/epum/engine-npreserving.js';
import { queuelenEngine } from '../../../src/actors/epum/engine-queuelen.js';
import { sensorEngine } from '../../../src/actors/epum/engine-sensor.js';
import { overflowEngine } from '../../../src/actors/epum/engine-overflow.js';
import { InvalidArgumentError, NotFoundError } from '../../../src/errors.js';

const T0 = 1_700_000_000_000;

function inst(id: string, over: Partial<EngineInstance> = {}): EngineInstance {
  return { id, state: 'RUNNING', health: 'OK', site: 'local', deployable_type: 'worker', launch_time: T0, vars: {}, ...over };
}

const good = {
  npreserving: { preserve_n: 2, deployable_type: 'worker', site: 'local' },
  queuelen: { queue: 'jobs', high_water: 10, low_water: 2, max_instances: 5, deployable_type: 'worker', site: 'local' },
  sensor: {
    metric: 'load',
    sample_function: 'average',
    scale_up_threshold: 0.8,
    scale_up_n: 1,
    scale_down_threshold: 0.2,
    scale_down_n: 1,
    minimum: 1,
    maximum: 4,
    deployable_type: 'worker',
    site: 'local',
  },
  overflow: { preserve_n: 3, deployable_type: 'worker', sites: [{ site: 'a', size: 2 }, { site: 'b', size: 5 }] },
};

const engines = { npreserving: npreservingEngine, queuelen: queuelenEngine, sensor: sensorEngine, overflow: overflowEngine } as Record<
  keyof typeof good,
  Engine
>;

type BadCase = { name: string; engine: keyof typeof good; conf: unknown; errors: string[] };

const without = (o: Record<string, unknown>, key: string): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([k]) => k !== key));

const bad: BadCase[] = [
  {
    name: 'every missing required key is named',
    engine: 'npreserving',
    conf: {},
    errors: ['missing required key "preserve_n"', 'missing required key "deployable_type"', 'missing required key "site"'],
  },
  { name: 'a conf that is not an object', engine: 'npreserving', conf: 5, errors: ['engine_conf must be an object like {"key": value} (got 5)'] },
  { name: 'a list is not an object', engine: 'queuelen', conf: [], errors: ['engine_conf must be an object like {"key": value} (got [])'] },
  { name: 'a misspelt key is unknown', engine: 'npreserving', conf: { ...good.npreserving, preserveN: 2 }, errors: ['unknown key "preserveN"'] },
  { name: 'a negative count', engine: 'npreserving', conf: { ...good.npreserving, preserve_n: -1 }, errors: ['"preserve_n" must be a whole number >= 0 (got -1)'] },
  { name: 'a fractional count', engine: 'npreserving', conf: { ...good.npreserving, preserve_n: 1.5 }, errors: ['"preserve_n" must be a whole number >= 0 (got 1.5)'] },
  { name: 'a word for a count', engine: 'npreserving', conf: { ...good.npreserving, preserve_n: 'two' }, errors: ['"preserve_n" must be a whole number >= 0 (got "two")'] },
  { name: 'an empty site name', engine: 'npreserving', conf: { ...good.npreserving, site: '' }, errors: ['"site" must be a non-empty string (got "")'] },
  {
    name: 'a repeated unique value',
    engine: 'npreserving',
    conf: { ...good.npreserving, unique_values: ['x', 'x'] },
    errors: ['"unique_values" must not repeat a value'],
  },
  { name: 'unique_values not a list', engine: 'npreserving', conf: { ...good.npreserving, unique_values: 'x' }, errors: ['"unique_values" must be a list of strings (got "x")'] },
  { name: 'a non-string unique value', engine: 'npreserving', conf: { ...good.npreserving, unique_values: ['x', 7] }, errors: ['"unique_values[1]" must be a non-empty string (got 7)'] },
  { name: 'queuelen without a queue', engine: 'queuelen', conf: without(good.queuelen, 'queue'), errors: ['missing required key "queue"'] },
  { name: 'low water above high water', engine: 'queuelen', conf: { ...good.queuelen, low_water: 11 }, errors: ['"low_water" must not exceed high_water (11 > 10)'] },
  { name: 'min above max', engine: 'queuelen', conf: { ...good.queuelen, min_instances: 6 }, errors: ['"min_instances" must not exceed max_instances (6 > 5)'] },
  {
    name: 'an unknown sample function',
    engine: 'sensor',
    conf: { ...good.sensor, sample_function: 'median' },
    errors: ['"sample_function" must be one of "average", "max", "min" (got "median")'],
  },
  {
    name: 'scale down threshold above scale up threshold',
    engine: 'sensor',
    conf: { ...good.sensor, scale_down_threshold: 0.9 },
    errors: ['"scale_down_threshold" must not exceed scale_up_threshold (0.9 > 0.8), or one reading would mean both'],
  },
  { name: 'a scale step of 0', engine: 'sensor', conf: { ...good.sensor, scale_up_n: 0 }, errors: ['"scale_up_n" must be a whole number >= 1 (got 0)'] },
  { name: 'a negative cooldown', engine: 'sensor', conf: { ...good.sensor, cooldown_period: -5 }, errors: ['"cooldown_period" must be a number of seconds >= 0 (got -5)'] },
  { name: 'a threshold that is not a number', engine: 'sensor', conf: { ...good.sensor, scale_up_threshold: true }, errors: ['"scale_up_threshold" must be a finite number (got true)'] },
  { name: 'no sites', engine: 'overflow', conf: { ...good.overflow, sites: [] }, errors: ['"sites" must list at least one site (got [])'] },
  {
    name: 'a bad size in the second site',
    engine: 'overflow',
    conf: { ...good.overflow, sites: [{ site: 'a', size: 2 }, { site: 'b', size: -1 }] },
    errors: ['"sites[1].size" must be a whole number >= 0 (got -1)'],
  },
  {
    name: 'a misspelt key in a site',
    engine: 'overflow',
    conf: { ...good.overflow, sites: [{ site: 'a', sise: 2 }] },
    errors: ['missing required key "sites[0].size"', 'unknown key "sites[0].sise"'],
  },
  {
    name: 'a site listed twice',
    engine: 'overflow',
    conf: { ...good.overflow, sites: [{ site: 'a', size: 2 }, { site: 'a', size: 5 }] },
    errors: ['"sites[1].site" lists site "a" a second time'],
  },
  {
    name: 'a site without a deployable type to use',
    engine: 'overflow',
    conf: { preserve_n: 1, sites: [{ site: 'a', size: 2, deployable_type: 'w' }, { site: 'b', size: 2 }] },
    errors: ['"sites[1].deployable_type" is required when there is no top-level deployable_type'],
  },
  { name: 'backoff_max below backoff_initial', engine: 'overflow', conf: { ...good.overflow, backoff_initial: 30, backoff_max: 10 }, errors: ['"backoff_max" must be at least backoff_initial (10 < 30)'] },
  { name: 'a zero backoff_initial', engine: 'overflow', conf: { ...good.overflow, backoff_initial: 0 }, errors: ['"backoff_initial" must be more than 0 seconds'] },
];

describe('engine conf validation', () => {
  it.each(bad)('$engine: $name', ({ engine, conf, errors }) => {
    expect(engines[engine].validateConf(conf)).toEqual({ ok: false, errors });
  });

  it('parseEngineConf throws one INVALID_ARGUMENT error carrying every message', () => {
    let caught: unknown;
    try {
      parseEngineConf(npreservingEngine, { preserve_n: -1, site: 'local' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
    expect((caught as Error).message).toBe(
      'engine_conf for "npreserving": "preserve_n" must be a whole number >= 0 (got -1); missing required key "deployable_type"',
    );
  });

  it.each([
    { engine: 'npreserving', conf: good.npreserving, filled: { unique_key: 'unique_value', retirable_nodes: [] } },
    { engine: 'queuelen', conf: good.queuelen, filled: { min_instances: 0 } },
    { engine: 'sensor', conf: good.sensor, filled: { cooldown_period: 0, sample_period: 60 } },
    { engine: 'overflow', conf: good.overflow, filled: { failure_threshold: 2, backoff_initial: 10, backoff_max: 300 } },
  ] as const)('$engine: defaults are filled in', ({ engine, conf, filled }) => {
    const check = engines[engine].validateConf(conf);
    expect(check.ok).toBe(true);
    expect(check.ok && check.conf).toMatchObject(filled);
  });

  it('counts given as numeric strings (key=value on a command line) are numbers', () => {
    expect(parseEngineConf(npreservingEngine, { ...good.npreserving, preserve_n: '4' })).toMatchObject({ preserve_n: 4 });
    expect(parseEngineConf(sensorEngine, { ...good.sensor, scale_up_threshold: '0.75' })).toMatchObject({ scale_up_threshold: 0.75 });
  });

  it('overflow: each site gets its own or the top-level deployable type', () => {
    const conf = parseEngineConf(overflowEngine, { ...good.overflow, sites: [{ site: 'a', size: 1 }, { site: 'b', size: 1, deployable_type: 'big' }] });
    expect(conf.sites).toEqual([
      { site: 'a', size: 1, deployable_type: 'worker' },
      { site: 'b', size: 1, deployable_type: 'big' },
    ]);
  });
});

describe('mergeEngineConf', () => {
  const current = { preserve_n: 2, site: 'local', retirable_nodes: ['a', 'b'], vars: { x: '1', y: '2' } };

  it.each([
    { name: 'a top-level key replaces the old value', patch: { preserve_n: 5 }, merged: { ...current, preserve_n: 5 } },
    { name: 'a list is replaced whole, not appended to', patch: { retirable_nodes: ['c'] }, merged: { ...current, retirable_nodes: ['c'] } },
    { name: 'an object is replaced whole, not deep-merged', patch: { vars: { z: '3' } }, merged: { ...current, vars: { z: '3' } } },
    { name: 'null removes a key', patch: { retirable_nodes: null }, merged: { preserve_n: 2, site: 'local', vars: { x: '1', y: '2' } } },
    { name: 'a new key is added', patch: { unique_values: ['u'] }, merged: { ...current, unique_values: ['u'] } },
    { name: 'an empty patch changes nothing', patch: {}, merged: current },
  ])('$name', ({ patch, merged }) => {
    const before = structuredClone(current);
    expect(mergeEngineConf(current, patch)).toEqual(merged);
    expect(current).toEqual(before);
  });

  it('a "__proto__" key from a JSON patch stays a plain key, for validation to reject', () => {
    const merged = mergeEngineConf(good.npreserving, JSON.parse('{"__proto__": {"preserve_n": 9}}') as Record<string, unknown>);
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.hasOwn(merged, '__proto__')).toBe(true);
    expect(npreservingEngine.validateConf(merged)).toEqual({ ok: false, errors: ['unknown key "__proto__"'] });
  });
});

describe('census and victims', () => {
  it('sorts instances into those that count and those to terminate', () => {
    const instances = [
      inst('run'),
      inst('pending', { state: 'PENDING' }),
      inst('silent', { health: 'OUT_OF_CONTACT' }),
      inst('missing', { health: 'MISSING' }),
      inst('bootfail', { state: 'RUNNING_FAILED' }),
      inst('zombie', { state: 'TERMINATED', health: 'ZOMBIE' }),
      inst('gone', { state: 'TERMINATED' }),
      inst('failed', { state: 'FAILED' }),
      inst('stopping', { state: 'TERMINATING' }),
    ];
    const { counted, doomed } = census(instances);
    expect(counted.map((i) => i.id)).toEqual(['run', 'pending', 'silent']);
    expect(doomed.map((i) => i.id)).toEqual(['missing', 'bootfail', 'zombie']);
  });

  it.each([
    { name: 'none wanted', n: 0, retirable: [], ids: [] },
    { name: 'newest first', n: 2, retirable: [], ids: ['c', 'b'] },
    { name: 'retirable first, in their order', n: 2, retirable: ['a', 'b'], ids: ['a', 'b'] },
    { name: 'retirable, then newest', n: 2, retirable: ['a'], ids: ['a', 'c'] },
    { name: 'no more than there are', n: 5, retirable: [], ids: ['c', 'b', 'a'] },
  ])('pickVictims: $name', ({ n, retirable, ids }) => {
    const candidates = [inst('a', { launch_time: T0 }), inst('b', { launch_time: T0 + 1 }), inst('c', { launch_time: T0 + 2 })];
    expect(pickVictims(candidates, n, retirable).map((i) => i.id)).toEqual(ids);
  });
});

describe('engines are pure', () => {
  function deepFreeze<T>(v: T): T {
    if (typeof v === 'object' && v !== null) {
      for (const x of Object.values(v)) deepFreeze(x);
      Object.freeze(v);
    }
    return v;
  }

  const instances = [
    inst('a', { site: 'a', launch_time: T0 }),
    inst('b', { site: 'a', launch_time: T0 + 1, health: 'MISSING' }),
    inst('c', { site: 'b', launch_time: T0 + 2, state: 'FAILED', state_desc: 'IAAS_FULL' }),
    inst('d', { site: 'b', launch_time: T0 + 3, state: 'PENDING' }),
  ];
  const sensors = { jobs: [{ time: T0, value: 50 }], load: [{ time: T0, value: 0.9, instance_id: 'a' }] };

  it.each(Object.keys(good) as (keyof typeof good)[])('%s: same input, same decision; no input mutated; no clock read; state is JSON', (name) => {
    const engine = engines[name];
    const conf = parseEngineConf(engine, good[name]);
    const input: EngineInput<unknown, Json> = deepFreeze({ conf, state: engine.initialState(conf), instances, sensors, now: T0 + 1_000 });
    const now = vi.spyOn(Date, 'now').mockImplementation(() => {
      throw new Error('an engine read the clock');
    });
    try {
      const first = engine.decide(input);
      const second = engine.decide(input);
      expect(second).toEqual(first);
      expect(JSON.parse(JSON.stringify(first.state))).toEqual(first.state);
      // A second tick from the stored state is as good as from the live one.
      const stored = JSON.parse(JSON.stringify(first.state)) as Json;
      expect(engine.decide({ ...input, state: stored })).toEqual(engine.decide({ ...input, state: first.state }));
    } finally {
      now.mockRestore();
    }
  });
});

describe('engine registry', () => {
  it('holds the built-in engines by name', () => {
    const registry = createEngineRegistry();
    expect(registry.names()).toEqual(['npreserving', 'overflow', 'queuelen', 'sensor']);
    expect(registry.getEngine('npreserving')).toBe(npreservingEngine);
    expect(registry.getEngine('overflow')).toBe(overflowEngine);
  });

  it('an unknown engine is NOT_FOUND and the message lists the known ones', () => {
    const registry = createEngineRegistry();
    expect(() => registry.getEngine('nope')).toThrow(NotFoundError);
    expect(() => registry.getEngine('nope')).toThrow('unknown decision engine "nope" (known: npreserving, overflow, queuelen, sensor)');
    expect(registry.hasEngine('nope')).toBe(false);
  });

  it('rejects a name already taken, a bad name and something that is not an engine', () => {
    const registry = createEngineRegistry();
    expect(() => registry.registerEngine('npreserving', queuelenEngine)).toThrow('decision engine "npreserving" is already registered');
    expect(() => registry.registerEngine('9lives', queuelenEngine)).toThrow(InvalidArgumentError);
    expect(() => registry.registerEngine('half', { name: 'half', decide: () => ({}) } as unknown as Engine)).toThrow(
      'decision engine "half" must be an object with name, validateConf, initialState and decide',
    );
  });

  it('registries are independent: an engine added to one is not in another', () => {
    const one = createEngineRegistry();
    const two = createEngineRegistry();
    one.registerEngine('alias', npreservingEngine);
    expect(one.hasEngine('alias')).toBe(true);
    expect(two.hasEngine('alias')).toBe(false);
    expect(new EngineRegistry().names()).toEqual([]);
  });
});

describe('loadEngineModule', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cei-unit-engines-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A user engine as someone would write it: plain JS, launching `fixed` instances of `dt`.
  const fixedEngine = `{
    name: 'fixed',
    validateConf(conf) {
      if (typeof conf !== 'object' || conf === null || !Number.isInteger(conf.fixed)) return { ok: false, errors: ['missing required key "fixed"'] };
      return { ok: true, conf };
    },
    initialState() { return { ticks: 0 }; },
    decide({ conf, state, instances }) {
      const live = instances.filter((i) => i.state === 'RUNNING').length;
      const actions = live < conf.fixed ? [{ type: 'launch', site: 'local', deployable_type: 'dt', count: conf.fixed - live, vars: {} }] : [];
      return { actions, state: { ticks: state.ticks + 1 } };
    },
  }`;

  function write(name: string, source: string): string {
    const file = join(dir, name);
    writeFileSync(file, source);
    return file;
  }

  it('loads a default-exported engine that a registry then runs like a built-in', async () => {
    const file = write('fixed.mjs', `export default ${fixedEngine};\n`);
    const registry = createEngineRegistry();
    for (const e of await loadEngineModule(file)) registry.registerEngine(e.name, e);
    const engine = registry.getEngine('fixed');
    expect(engine.validateConf({})).toEqual({ ok: false, errors: ['missing required key "fixed"'] });
    const conf = parseEngineConf(engine, { fixed: 2 });
    const decision = engine.decide({ conf, state: engine.initialState(conf), instances: [], sensors: {}, now: T0 });
    expect(decision).toEqual({ actions: [{ type: 'launch', site: 'local', deployable_type: 'dt', count: 2, vars: {} }], state: { ticks: 1 } });
  });

  it('loads an `engines` array from a .js module', async () => {
    write('package.json', '{"type": "module"}');
    const file = write('many.js', `const a = ${fixedEngine};\nexport const engines = [a, { ...a, name: 'fixed2' }];\n`);
    expect((await loadEngineModule(file)).map((e) => e.name)).toEqual(['fixed', 'fixed2']);
  });

  it.each([
    { name: 'a missing file', file: 'nope.mjs', source: undefined, message: 'no such file' },
    { name: 'a module that fails to load', file: 'throws.mjs', source: 'throw new Error("boom");\n', message: 'cannot load module: boom' },
    { name: 'a module with a syntax error', file: 'syntax.mjs', source: 'export default {;\n', message: 'cannot load module' },
    { name: 'a module exporting no engine', file: 'empty.mjs', source: 'export const x = 1;\n', message: 'export decision engines' },
    { name: 'a module exporting something else too', file: 'mixed.mjs', source: `export const engines = [${fixedEngine}, { name: 'x' }];\n`, message: 'export decision engines' },
  ])('rejects $name with INVALID_ARGUMENT', async ({ file, source, message }) => {
    const path = source === undefined ? join(dir, file) : write(file, source);
    const err = await loadEngineModule(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain(`--engines ${path}: ${message}`);
  });
});
