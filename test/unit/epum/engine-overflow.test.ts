import { describe, expect, it } from 'vitest';
import { isBackedOff, overflowEngine, type OverflowConf, type OverflowState, type SiteRecord } from '../../../src/actors/epum/engine-overflow.js';
import { mergeEngineConf, parseEngineConf, type EngineAction, type EngineInstance } from '../../../src/actors/epum/engine.js';

const T0 = 1_700_000_000_000;

function inst(id: string, site: string, over: Partial<EngineInstance> = {}): EngineInstance {
  return { id, state: 'RUNNING', health: 'OK', site, deployable_type: 'worker', launch_time: T0, vars: {}, ...over };
}

/** n RUNNING instances at a site, named <site>0.., launched one ms apart (the last is the newest). */
function at(site: string, n: number, over: Partial<EngineInstance> = {}): EngineInstance[] {
  return Array.from({ length: n }, (_, k) => inst(`${site}${k}`, site, { launch_time: T0 + k, ...over }));
}

const base = {
  preserve_n: 3,
  deployable_type: 'worker',
  sites: [
    { site: 'a', size: 2 },
    { site: 'b', size: 2 },
    { site: 'c', size: 10, deployable_type: 'big' },
  ],
  failure_threshold: 2,
  backoff_initial: 10,
  backoff_max: 40,
};

const launch = (site: string, count: number): EngineAction => ({
  type: 'launch',
  site,
  deployable_type: site === 'c' ? 'big' : 'worker',
  count,
  vars: {},
});
const destroy = (...ids: string[]): EngineAction => ({ type: 'destroy', instance_ids: ids });

function conf(raw: Record<string, unknown> = base): OverflowConf {
  return parseEngineConf(overflowEngine, raw);
}

function decideFresh(raw: Record<string, unknown>, instances: EngineInstance[], now = T0) {
  const c = conf(raw);
  return overflowEngine.decide({ conf: c, state: overflowEngine.initialState(c), instances, sensors: {}, now });
}

type Case = { name: string; conf?: Record<string, unknown>; instances: EngineInstance[]; actions: EngineAction[] };

const cases: Case[] = [
  { name: 'overflow: fills the first site, then the next', instances: [], actions: [launch('a', 2), launch('b', 1)] },
  { name: 'overflow: uses the site deployable_type, else the top-level one', conf: { ...base, preserve_n: 7 }, instances: [], actions: [launch('a', 2), launch('b', 2), launch('c', 3)] },
  { name: 'overflow: room freed at the first site is filled there', instances: [...at('a', 1), ...at('b', 1)], actions: [launch('a', 1)] },
  { name: 'steady: preserve_n placed does nothing', instances: [...at('a', 2), ...at('b', 1)], actions: [] },
  {
    name: 'steady: instances are not moved back to a preferred site',
    instances: [...at('a', 1), ...at('b', 2)],
    actions: [],
  },
  {
    name: 'pending instances count where they are',
    instances: [...at('a', 2, { state: 'REQUESTING' }), ...at('b', 1, { state: 'PENDING' })],
    actions: [],
  },
  {
    name: 'shrink: the last sites give up instances first',
    conf: { ...base, preserve_n: 2 },
    instances: [...at('a', 2), ...at('b', 1), ...at('c', 1)],
    actions: [destroy('c0', 'b0')],
  },
  {
    name: 'shrink: within a site the newest goes first',
    conf: { ...base, preserve_n: 3 },
    instances: [...at('a', 2), ...at('b', 2)],
    actions: [destroy('b1')],
  },
  {
    name: 'unhealthy: destroyed and replaced at the first site with room',
    instances: [inst('a0', 'a'), inst('a1', 'a', { health: 'MISSING' }), ...at('b', 1)],
    actions: [destroy('a1'), launch('a', 1)],
  },
  {
    name: 'a site with no room overflows in full to the next',
    conf: { ...base, sites: [{ site: 'a', size: 0 }, { site: 'b', size: 5 }] },
    instances: [],
    actions: [launch('b', 3)],
  },
  {
    name: 'more than all sites hold: launches what fits',
    conf: { ...base, preserve_n: 20 },
    instances: [],
    actions: [launch('a', 2), launch('b', 2), launch('c', 10)],
  },
  {
    name: 'a single failure below failure_threshold does not back a site off',
    instances: [inst('x', 'a', { state: 'FAILED', state_desc: 'IAAS_FULL' }), ...at('a', 1), ...at('b', 1)],
    actions: [launch('a', 1)],
  },
];

describe('overflow engine', () => {
  it.each(cases)('$name', ({ conf: raw, instances, actions }) => {
    expect(decideFresh(raw ?? base, instances).actions).toEqual(actions);
  });

  describe('backoff', () => {
    // a (size 2) fails every launch; b (size 2) cannot take all of preserve_n 4, so a keeps being
    // retried whenever its backoff runs out. The state goes through JSON between ticks as the actor
    // stores it.
    const c = conf({ ...base, preserve_n: 4, sites: [{ site: 'a', size: 2 }, { site: 'b', size: 2 }] });
    const full = (id: string, launchedAt: number) => inst(id, 'a', { state: 'FAILED', state_desc: 'IAAS_FULL', launch_time: launchedAt });
    const asked = (id: string, launchedAt: number) => inst(id, 'a', { state: 'REQUESTING', launch_time: launchedAt });
    const b = at('b', 2);
    const s = (sec: number) => T0 + sec * 1_000;

    type Tick = { at: number; instances: EngineInstance[]; actions: EngineAction[]; a: Partial<SiteRecord> };
    const ticks: Tick[] = [
      { at: 0, instances: [], actions: [launch('a', 2), launch('b', 2)], a: { failures: 0, retry_at: null } },
      // Both launches at a fail: the threshold (2) is reached, backed off for 10 s.
      { at: 1, instances: [full('a1', s(0)), full('a2', s(0)), ...b], actions: [], a: { failures: 2, backoff_ms: 10_000, retry_at: s(11) } },
      // The same failed records again are not counted again.
      { at: 5, instances: [full('a1', s(0)), full('a2', s(0)), ...b], actions: [], a: { failures: 2, retry_at: s(11) } },
      // Backoff over: a gets its share again.
      { at: 11, instances: [full('a1', s(0)), full('a2', s(0)), ...b], actions: [launch('a', 2)], a: { retry_at: s(11) } },
      { at: 12, instances: [asked('a3', s(11)), asked('a4', s(11)), ...b], actions: [], a: { failures: 2 } },
      // One retry fails: the backoff doubles to 20 s.
      { at: 13, instances: [full('a3', s(11)), asked('a4', s(11)), ...b], actions: [], a: { failures: 3, backoff_ms: 20_000, retry_at: s(33) } },
      // A failure of a launch made before the backoff is counted but does not extend it.
      { at: 14, instances: [full('a3', s(11)), full('a4', s(11)), ...b], actions: [], a: { failures: 4, backoff_ms: 20_000, retry_at: s(33) } },
      { at: 32, instances: [full('a3', s(11)), full('a4', s(11)), ...b], actions: [], a: { retry_at: s(33) } },
      { at: 33, instances: [full('a3', s(11)), full('a4', s(11)), ...b], actions: [launch('a', 2)], a: {} },
      { at: 34, instances: [full('a5', s(33)), full('a6', s(33)), ...b], actions: [], a: { failures: 6, backoff_ms: 40_000, retry_at: s(74) } },
      { at: 74, instances: [full('a5', s(33)), full('a6', s(33)), ...b], actions: [launch('a', 2)], a: {} },
      // Capped at backoff_max (40 s).
      { at: 75, instances: [full('a7', s(74)), full('a8', s(74)), ...b], actions: [], a: { failures: 8, backoff_ms: 40_000, retry_at: s(115) } },
      { at: 115, instances: [full('a7', s(74)), full('a8', s(74)), ...b], actions: [launch('a', 2)], a: {} },
      // One launch reaches RUNNING: the streak and the backoff are reset.
      {
        at: 116,
        instances: [inst('a9', 'a', { launch_time: s(115) }), asked('a10', s(115)), ...b],
        actions: [],
        a: { failures: 0, backoff_ms: 0, retry_at: null },
      },
      // After the reset a single failure is below the threshold again: replaced at a at once.
      {
        at: 117,
        instances: [inst('a9', 'a', { launch_time: s(115) }), full('a10', s(115)), ...b],
        actions: [launch('a', 1)],
        a: { failures: 1, backoff_ms: 0, retry_at: null },
      },
    ];

    it('backs a failing site off, doubling up to backoff_max, and resets after a success', () => {
      let state: OverflowState = overflowEngine.initialState(c);
      for (const tick of ticks) {
        const decision = overflowEngine.decide({ conf: c, state, instances: tick.instances, sensors: {}, now: s(tick.at) });
        expect({ at: tick.at, actions: decision.actions }).toEqual({ at: tick.at, actions: tick.actions });
        expect(decision.state.sites.a).toMatchObject(tick.a);
        state = JSON.parse(JSON.stringify(decision.state)) as OverflowState;
      }
    });

    it('gives a backed-off site share to the next site', () => {
      const c2 = conf({ ...base, preserve_n: 4, sites: [{ site: 'a', size: 4 }, { site: 'b', size: 4 }] });
      const failed = [1, 2, 3, 4].map((k) => inst(`a${k}`, 'a', { state: 'REJECTED' }));
      const d = overflowEngine.decide({ conf: c2, state: overflowEngine.initialState(c2), instances: failed, sensors: {}, now: T0 });
      expect(d.actions).toEqual([launch('b', 4)]);
      expect(isBackedOff(d.state.sites.a!, T0)).toBe(true);
    });

    it.each([
      { name: 'FAILED', over: { state: 'FAILED' } },
      { name: 'REJECTED', over: { state: 'REJECTED' } },
      { name: 'RUNNING_FAILED', over: { state: 'RUNNING_FAILED' } },
      { name: 'IAAS_FULL in any state', over: { state: 'TERMINATED', state_desc: 'IAAS_FULL' } },
    ] as const)('$name counts as a failed launch', ({ over }) => {
      const d = decideFresh(base, [inst('x1', 'a', over), inst('x2', 'a', over)]);
      expect(isBackedOff(d.state.sites.a!, T0)).toBe(true);
    });

    it('an instance of the site reaching RUNNING ends a running backoff at once', () => {
      const c2 = conf(base);
      const state: OverflowState = {
        sites: { a: { failures: 2, backoff_ms: 10_000, retry_at: T0 + 10_000, failed_seen: ['x1', 'x2'], running_seen: [] } },
      };
      // a0 was asked for before the backoff and came up late: a has capacity after all.
      const d = overflowEngine.decide({ conf: c2, state, instances: [...at('a', 1), ...at('b', 1)], sensors: {}, now: T0 + 1_000 });
      expect(d.state.sites.a).toMatchObject({ failures: 0, backoff_ms: 0, retry_at: null, running_seen: ['a0'] });
      expect(d.actions).toEqual([launch('a', 1)]);
    });

    it('a terminated instance without IAAS_FULL is not a failure', () => {
      const d = decideFresh(base, [inst('x1', 'a', { state: 'TERMINATED' }), inst('x2', 'a', { state: 'TERMINATED' })]);
      expect(d.state.sites.a).toMatchObject({ failures: 0, retry_at: null });
    });

    it('a failure at one site does not back off another', () => {
      const d = decideFresh(base, [inst('x1', 'a', { state: 'FAILED' }), inst('x2', 'a', { state: 'FAILED' })]);
      expect(d.state.sites.b).toMatchObject({ failures: 0, retry_at: null });
      expect(d.actions).toEqual([launch('b', 2), launch('c', 1)]);
    });
  });

  describe('reconfigure', () => {
    const backedOffA: OverflowState = {
      sites: {
        a: { failures: 3, backoff_ms: 20_000, retry_at: T0 + 20_000, failed_seen: [], running_seen: ['a0'] },
        b: { failures: 0, backoff_ms: 0, retry_at: null, failed_seen: [], running_seen: ['b0'] },
      },
    };

    function decideAfter(patch: Record<string, unknown>, instances: EngineInstance[]) {
      const c = conf(mergeEngineConf(base, patch));
      return overflowEngine.decide({ conf: c, state: backedOffA, instances, sensors: {}, now: T0 + 1_000 });
    }

    it('a site removed from the conf loses its instances and its record; its share moves on', () => {
      const d = decideAfter({ sites: [{ site: 'a', size: 2 }, { site: 'c', size: 10, deployable_type: 'big' }] }, [...at('a', 1), ...at('b', 2)]);
      expect(d.actions).toEqual([destroy('b0', 'b1'), launch('c', 2)]);
      expect(Object.keys(d.state.sites)).toEqual(['a', 'c']);
    });

    it('a surviving site keeps its backoff across the reconfigure', () => {
      const d = decideAfter({ preserve_n: 4 }, [...at('b', 1)]);
      expect(d.state.sites.a).toMatchObject({ backoff_ms: 20_000, retry_at: T0 + 20_000 });
      expect(d.actions).toEqual([launch('b', 1), launch('c', 2)]);
    });

    it('a lower size terminates the excess at that site and overflows it', () => {
      const d = decideAfter({ sites: [{ site: 'b', size: 1 }, { site: 'c', size: 10, deployable_type: 'big' }] }, [...at('b', 2)]);
      expect(d.actions).toEqual([destroy('b1'), launch('c', 2)]);
    });

    it('new sites start with a fresh record, in the order given', () => {
      const d = decideAfter({ sites: [{ site: 'new', size: 5 }, { site: 'a', size: 2 }] }, []);
      expect(d.state.sites.new).toEqual({ failures: 0, backoff_ms: 0, retry_at: null, failed_seen: [], running_seen: [] });
      expect(d.actions).toEqual([{ type: 'launch', site: 'new', deployable_type: 'worker', count: 3, vars: {} }]);
    });
  });
});

