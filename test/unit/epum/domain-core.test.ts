/**
 * A domain's logic as pure functions over a draft, with a fixed clock: the tick's order (pending
 * config first), what the engine sees, retries, stale reports, removal, pruning.
 */
import { describe, expect, it } from 'vitest';
import {
  applyHeartbeat,
  applyReconfigure,
  applyReports,
  createDomain,
  launchTargets,
  reconfigured,
  startRemoval,
  step,
  type StepInputs,
} from '../../../src/actors/epum/domain-core.js';
import { DomainDraft, emptyDomainState, type DomainState } from '../../../src/actors/epum/domain-state.js';
import { createEngineRegistry, type Engine, type EngineInput } from '../../../src/actors/epum/engine.js';
import { EPUM_TEST_PRESET } from '../../../src/actors/epum/options.js';
import { DomainConfigSchema, ReconfigureSchema } from '../../../src/actors/epum/protocol.js';
import type { InstanceView } from '../../../src/actors/provisioner-protocol.js';

const T0 = 1_700_000_000_000;
const npreserving = createEngineRegistry().getEngine('npreserving');
const config = (n: number) => DomainConfigSchema.parse({ engine: 'npreserving', engine_conf: { preserve_n: n, deployable_type: 'dt', site: 's' } });

function inputs(now: number, engine: Engine | undefined = npreserving): StepInputs {
  return { now, options: EPUM_TEST_PRESET, engine, health: { members: new Map(), heardAt: () => undefined }, sensors: {} };
}

function created(n: number): DomainState {
  const d = new DomainDraft(emptyDomainState(), T0);
  createDomain(d, 'd', { op: 'create', config: config(n) }, npreserving, EPUM_TEST_PRESET);
  expect(d.effects.map((e) => e.kind)).toEqual(['tick', 'registered']);
  return d.state;
}

function tick(state: DomainState, now: number, engine?: Engine): DomainDraft {
  const d = new DomainDraft(state, now);
  step(d, inputs(now, engine));
  return d;
}

function report(state: DomainState, now: number, views: Array<Partial<InstanceView> & { instance_id: string }>): DomainDraft {
  const d = new DomainDraft(state, now);
  applyReports(
    d,
    views.map((v) => ({ launch_id: '', state: 'RUNNING', deployable_type: 'dt', site: 's', vars: {}, created_at: T0, state_changed_at: now, ...v }) as InstanceView),
  );
  return d;
}

describe('a domain tick', () => {
  it('launches the deficit once, as REQUESTING instances named by launch, and counts them on the next tick', () => {
    const d = tick(created(2), T0);
    const provisions = d.effects.filter((e) => e.kind === 'provision');
    expect(provisions).toHaveLength(1);
    const launch = (provisions[0] as Extract<(typeof d.effects)[number], { kind: 'provision' }>).launch;
    expect(launch).toMatchObject({ launch_id: `d-${T0.toString(36)}-1`, count: 2, vars: { epum_domain: 'd' }, acked: false });
    expect(Object.keys(d.state.instances)).toEqual([`${launch.launch_id}-0`, `${launch.launch_id}-1`]);
    expect(Object.values(d.state.instances).map((i) => i.state)).toEqual(['REQUESTING', 'REQUESTING']);
    expect(d.state.last_decision).toEqual({ at: T0, launched: 2, destroyed: [] });
    // Not reported yet, but counted: nothing more is launched.
    expect(tick(d.state, T0 + 100).effects).toEqual([]);
  });

  it('tells an unacknowledged provision again after launchRetryMs, with the same launch id, and stops once reported', () => {
    const first = tick(created(1), T0).state;
    const retried = tick(first, T0 + EPUM_TEST_PRESET.launchRetryMs);
    expect(retried.effects).toMatchObject([{ kind: 'provision', launch: { launch_id: `d-${T0.toString(36)}-1`, attempts: 2 } }]);
    const id = Object.keys(first.instances)[0]!;
    const acked = report(retried.state, T0 + 3_000, [{ instance_id: id, state: 'PENDING' }]).state;
    expect(tick(acked, T0 + 3 * EPUM_TEST_PRESET.launchRetryMs).effects).toEqual([]);
  });

  it('ignores stale reports and never brings a final instance back', () => {
    const s = tick(created(1), T0).state;
    const id = Object.keys(s.instances)[0]!;
    let d = report(s, T0 + 10, [{ instance_id: id, state: 'RUNNING', state_changed_at: T0 + 10, node_id: 'w1' }]);
    expect(d.state.instances[id]).toMatchObject({ state: 'RUNNING', running_since: T0 + 10, node_id: 'w1' });
    expect(d.changed.has(id)).toBe(true);
    d = report(d.state, T0 + 20, [{ instance_id: id, state: 'PENDING', state_changed_at: T0 + 5 }]);
    expect(d.state.instances[id]!.state).toBe('RUNNING');
    d = report(d.state, T0 + 30, [{ instance_id: id, state: 'TERMINATED', state_desc: 'NODE_DISAPPEARED', state_changed_at: T0 + 30 }]);
    expect(d.lost).toBe(true);
    d = report(d.state, T0 + 40, [{ instance_id: id, state: 'RUNNING', state_changed_at: T0 + 40 }]);
    expect(d.state.instances[id]!.state).toBe('TERMINATED');
  });

  it('applies a reconfigure only on the next tick, and shows terminate-asked instances to the engine as TERMINATING', () => {
    let s = tick(created(2), T0).state;
    const ids = Object.keys(s.instances);
    s = report(s, T0 + 10, ids.map((instance_id) => ({ instance_id, state: 'RUNNING' }))).state;
    const d = new DomainDraft(s, T0 + 20);
    applyReconfigure(d, reconfigured(s, ReconfigureSchema.parse({ engine_conf: { preserve_n: 1 } })));
    expect([d.state.version, d.state.applied_version, d.state.config.engine_conf.preserve_n]).toEqual([2, 1, 2]);
    expect(d.effects).toEqual([]);
    const seen: EngineInput<unknown, never>[] = [];
    const spy: Engine = { ...npreserving, decide: (input) => (seen.push(input as never), npreserving.decide(input)) } as Engine;
    const t = tick(d.state, T0 + 30, spy);
    expect([t.state.version, t.state.applied_version, t.state.config.engine_conf.preserve_n, t.state.pending]).toEqual([2, 2, 1, undefined]);
    expect(t.effects).toEqual([{ kind: 'terminate', instance_ids: [ids[1]] }]);
    const again = tick(t.state, T0 + 40, spy);
    expect(again.effects).toEqual([]);
    expect(seen[1]!.instances.map((i) => i.state)).toEqual(['RUNNING', 'TERMINATING']);
  });

  it('merges a reconfigure the original way: top-level keys whole, null removes; health null restores the default', () => {
    const s = created(1);
    const next = reconfigured(
      { ...s, config: DomainConfigSchema.parse({ ...s.config, engine_conf: { ...s.config.engine_conf, retirable_nodes: ['a', 'b'] }, health: { missing_timeout: 3 } }) },
      ReconfigureSchema.parse({ engine_conf: { retirable_nodes: ['c'], site: null }, health: { missing_timeout: null, zombie_seconds: 1 }, tick_seconds: 0.5 }),
    );
    expect(next.engine_conf).toEqual({ preserve_n: 1, deployable_type: 'dt', retirable_nodes: ['c'] });
    expect(next.health).toMatchObject({ missing_timeout: 10, zombie_seconds: 1 });
    expect(next.tick_seconds).toBe(0.5);
    expect(ReconfigureSchema.safeParse({}).success).toBe(false);
    expect(ReconfigureSchema.safeParse({ engine: 'x' }).error?.issues[0]?.message).toMatch(/cannot be changed/);
  });

  it('records why it cannot decide when the engine is missing on this node or its conf is bad, without launching', () => {
    const noEngine = new DomainDraft(created(1), T0);
    step(noEngine, { ...inputs(T0), engine: undefined });
    expect(noEngine.state.error).toMatch(/decision engine "npreserving" is not registered on the node hosting this domain/);
    expect(noEngine.effects).toEqual([]);
    const throwing = tick(created(1), T0, { ...npreserving, decide: () => { throw new Error('boom'); } } as Engine);
    expect(throwing.state.error).toBe('decision engine "npreserving" failed: boom');
  });

  it('removes: terminates every live instance, takes one never reported as never launched, then reports once', () => {
    let s = tick(created(2), T0).state;
    const [a, b] = Object.keys(s.instances);
    s = report(s, T0 + 10, [{ instance_id: a!, state: 'RUNNING' }]).state;
    const d = new DomainDraft(s, T0 + 20);
    expect(startRemoval(d)).toEqual({ id: 'd', status: 'removing', terminating: 2 });
    step(d, inputs(T0 + 20));
    expect(d.effects).toEqual([{ kind: 'terminate', instance_ids: [a, b] }]);
    s = report(d.state, T0 + 30, [{ instance_id: a!, state: 'TERMINATED', state_changed_at: T0 + 30 }]).state;
    const later = tick(s, T0 + 30 + 2 * EPUM_TEST_PRESET.terminateRetryMs);
    expect(later.state.instances[b!]).toMatchObject({ state: 'TERMINATED', state_desc: 'NEVER_LAUNCHED' });
    expect(later.effects.map((e) => e.kind)).toContain('removed');
    expect(tick(later.state, T0 + 100_000).effects.map((e) => e.kind)).not.toContain('removed');
  });

  it('forgets final instances past their retention, and their launches', () => {
    let s = tick(created(1), T0).state;
    const [a] = Object.keys(s.instances);
    s = report(s, T0 + 10, [{ instance_id: a!, state: 'FAILED', state_changed_at: T0 + 10 }]).state;
    s = tick(s, T0 + 20).state;
    expect(Object.keys(s.instances)).toHaveLength(2);
    s = tick(s, T0 + 30 + EPUM_TEST_PRESET.retainFinalMs).state;
    expect(Object.keys(s.instances)).not.toContain(a);
    expect(Object.keys(s.launches)).toEqual([s.instances[Object.keys(s.instances)[0]!]!.launch_id]);
  });

  it('turns a heartbeat into a verdict: ok, unknown, zombie, or a process error', () => {
    let s = tick(created(1), T0).state;
    const [a] = Object.keys(s.instances);
    s = report(s, T0 + 10, [{ instance_id: a!, state: 'RUNNING' }]).state;
    let d = new DomainDraft(s, T0 + 20);
    expect(applyHeartbeat(d, { op: 'heartbeat', instance_id: a! })).toEqual({ verdict: 'ok' });
    expect(applyHeartbeat(d, { op: 'heartbeat', instance_id: 'x' })).toEqual({ verdict: 'unknown' });
    expect(applyHeartbeat(d, { op: 'heartbeat', instance_id: a!, error: 'disk full' })).toEqual({ verdict: 'ok' });
    expect(d.state.instances[a!]).toMatchObject({ health: 'PROCESS_ERROR', health_reason: 'the worker reported: disk full' });
    expect(d.lost).toBe(true);
    d = new DomainDraft(s, T0 + 30);
    d.terminate([a!]);
    const z = new DomainDraft(d.state, T0 + 30 + 11_000);
    expect(applyHeartbeat(z, { op: 'heartbeat', instance_id: a! })).toEqual({ verdict: 'zombie' });
    expect(z.state.instances[a!]!.health).toBe('ZOMBIE');
  });
});

describe('launchTargets', () => {
  it('reads deployable type and site by the built-in engines\' keys', () => {
    expect(launchTargets({ deployable_type: 'a', site: 's' })).toEqual([{ deployable_type: 'a', site: 's' }]);
    expect(
      launchTargets({ deployable_type: 'a', sites: [{ site: 's1' }, { site: 's2', deployable_type: 'b' }, { site: 's1' }] }),
    ).toEqual([
      { deployable_type: 'a', site: 's1' },
      { deployable_type: 'b', site: 's2' },
    ]);
    expect(launchTargets({ n: 1 })).toEqual([]);
    expect(launchTargets(null)).toEqual([]);
  });
});
