import { describe, expect, it } from 'vitest';
import { CeiError } from '../../../src/errors.js';
import {
  DISPATCHER_DEFAULTS,
  DispatcherCore,
  type AgentHeartbeat,
  type AgentProcessReport,
  type DispatcherEffect,
  type DispatcherOptions,
  type ScheduleRequest,
} from '../../../src/actors/dispatcher/core.js';

const T0 = 1_700_000_000_000;

function makeCore(options: Partial<DispatcherOptions> = {}): DispatcherCore {
  const core = new DispatcherCore({ ...DISPATCHER_DEFAULTS, ...options });
  core.createDefinition({ id: 'sleep', type: 'exec', executable: { argv: ['sleep', '60'] }, config: { log: { level: 'info' }, retries: 1 } });
  return core;
}

function beat(agentId: string, at: number, processes: AgentProcessReport[] = [], over: Partial<AgentHeartbeat> = {}): AgentHeartbeat {
  return { agentId, nodeId: `node-${agentId}`, engineType: 'default', slots: 2, processes, properties: { hostname: `host-${agentId}`, role: 'worker' }, at, ...over };
}

function sched(upid: string, over: Partial<ScheduleRequest> = {}): ScheduleRequest {
  return { upid, definitionId: 'sleep', ...over };
}

const ofType = <K extends DispatcherEffect['type']>(fx: DispatcherEffect[], type: K): Array<Extract<DispatcherEffect, { type: K }>> =>
  fx.filter((e): e is Extract<DispatcherEffect, { type: K }> => e.type === type);

function caught(fn: () => unknown): CeiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CeiError) return err;
    throw err;
  }
  throw new Error('expected a CeiError');
}

describe('definitions', () => {
  it('create, describe, update, list, remove, with typed errors', () => {
    const core = makeCore();
    expect(caught(() => core.createDefinition({ id: 'sleep', type: 'exec', executable: {}, config: {} })).code).toBe('ALREADY_EXISTS');
    core.updateDefinition({ id: 'sleep', type: 'js', executable: { module: 'x.js' }, config: {} });
    expect(core.describeDefinition('sleep')?.type).toBe('js');
    expect(core.listDefinitions().map((d) => d.id)).toEqual(['sleep']);
    core.removeDefinition('sleep');
    expect(caught(() => core.removeDefinition('sleep')).code).toBe('NOT_FOUND');
    expect(caught(() => core.updateDefinition({ id: 'nope', type: 'exec', executable: {}, config: {} })).code).toBe('NOT_FOUND');
    expect(caught(() => core.createDefinition({ id: '', type: 'exec', executable: {}, config: {} })).code).toBe('INVALID_ARGUMENT');
  });
});

describe('schedule', () => {
  it('launches on a free agent with the definition resolved and the configuration merged', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    const { process, effects } = core.schedule(sched('p1', { configuration: { log: { file: '/tmp/x' }, retries: 3 } }), T0);
    expect(process.state).toBe('ASSIGNED');
    expect(process.hostname).toBe('host-a1');
    const [launch] = ofType(effects, 'launch');
    expect(launch).toMatchObject({ agentId: 'a1', nodeId: 'node-a1', upid: 'p1', round: 0, definition: { id: 'sleep', type: 'exec' } });
    expect(launch!.configuration).toEqual({ log: { level: 'info', file: '/tmp/x' }, retries: 3 });
  });

  it('is idempotent for the same parameters and refuses different ones naming the field', () => {
    const core = makeCore();
    core.schedule(sched('p1', { constraints: { role: 'worker' }, name: 'first' }), T0);
    const again = core.schedule(sched('p1', { constraints: { role: 'worker' }, queueingMode: 'ALWAYS', name: 'renamed' }), T0 + 1);
    expect(again.effects).toEqual([]);
    expect(again.process.state).toBe('WAITING');
    const err = caught(() => core.schedule(sched('p1', { constraints: { role: 'db' } }), T0 + 2));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/constraints/);
    expect(caught(() => core.schedule(sched('p1', { constraints: { role: 'worker' }, restartMode: 'NEVER' }), T0)).message).toMatch(/restartMode/);
  });

  it('refuses an unknown definition and malformed constraints without storing anything', () => {
    const core = makeCore();
    expect(caught(() => core.schedule(sched('p1', { definitionId: 'nope' }), T0)).code).toBe('NOT_FOUND');
    const bad = caught(() => core.schedule(sched('p2', { constraints: { cpu_load: { '=~': 1 } } }), T0));
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(bad.message).toMatch(/cpu_load/);
    expect(core.list()).toEqual([]);
  });
});

describe('state machine and rounds', () => {
  it('ASSIGNED -> PENDING -> RUNNING -> EXITED by agent reports, with notifications for every change', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    const first = core.schedule(sched('p1', { subscribers: ['sub/1'] }), T0);
    const states = (fx: DispatcherEffect[]) => ofType(fx, 'notify').map((n) => `${n.state}@${n.round}`);
    expect(states(first.effects)).toEqual(['REQUESTED@0', 'ASSIGNED@0']);
    expect(ofType(first.effects, 'notify')[0]).toEqual({ type: 'notify', subscriber: 'sub/1', upid: 'p1', state: 'REQUESTED', round: 0 });
    expect(states(core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p1', round: 0, state: 'PENDING' }]), T0 + 1).effects)).toEqual(['PENDING@0']);
    expect(states(core.heartbeat(beat('a1', T0 + 2, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 2).effects)).toEqual(['RUNNING@0']);
    expect(core.describe('p1')?.starts).toBe(1);
    const end = core.heartbeat(beat('a1', T0 + 3, [{ upid: 'p1', round: 0, state: 'EXITED' }]), T0 + 3);
    expect(states(end.effects)).toEqual(['EXITED@0']);
    expect(ofType(end.effects, 'cleanup')).toEqual([{ type: 'cleanup', agentId: 'a1', nodeId: 'node-a1', upid: 'p1', round: 0 }]);
    expect(core.describe('p1')?.assigned).toBeUndefined();
    expect(core.state.agents.a1!.assigned).toEqual([]);
  });

  it('ignores reports of an older round and tells the agent to stop that round', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p1'), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 1);
    core.restart('p1', T0 + 2);
    expect(core.describe('p1')).toMatchObject({ round: 1, state: 'ASSIGNED' });
    const stale = core.heartbeat(beat('a1', T0 + 3, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 3);
    expect(core.describe('p1')).toMatchObject({ round: 1, state: 'ASSIGNED' });
    expect(ofType(stale.effects, 'terminate')).toEqual([{ type: 'terminate', agentId: 'a1', nodeId: 'node-a1', upid: 'p1', round: 0 }]);
    expect(ofType(stale.effects, 'notify')).toEqual([]);
  });

  it('drops a heartbeat older than the last one applied', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0 + 10), T0);
    core.schedule(sched('p1'), T0);
    core.heartbeat(beat('a1', T0 + 5, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 1);
    expect(core.describe('p1')?.state).toBe('ASSIGNED');
  });
});

describe('queueing modes', () => {
  const firstStart = (mode: ScheduleRequest['queueingMode']) => makeCore().schedule(sched('p', { queueingMode: mode }), T0).process.state;

  it('a first start with no slot waits unless NEVER or RESTART_ONLY', () => {
    expect(firstStart('ALWAYS')).toBe('WAITING');
    expect(firstStart(undefined)).toBe('WAITING');
    expect(firstStart('START_ONLY')).toBe('WAITING');
    expect(firstStart('NEVER')).toBe('REJECTED');
    expect(firstStart('RESTART_ONLY')).toBe('REJECTED');
  });

  function restartWithoutSlot(mode: ScheduleRequest['queueingMode']): string {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0, [], { slots: 1 }), T0);
    core.schedule(sched('p', { queueingMode: mode, restartMode: 'ALWAYS' }), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p', round: 0, state: 'RUNNING' }], { slots: 1 }), T0 + 1);
    core.schedule(sched('blocker', { queueingMode: 'ALWAYS' }), T0 + 2);
    // The process ends; before matching runs again the blocker takes the freed slot (it was queued first).
    core.heartbeat(beat('a1', T0 + 3, [{ upid: 'p', round: 0, state: 'EXITED' }], { slots: 1 }), T0 + 3);
    expect(core.describe('blocker')?.state).toBe('ASSIGNED');
    return core.describe('p')!.state;
  }

  it('a restart with no slot waits unless NEVER or START_ONLY', () => {
    expect(restartWithoutSlot('ALWAYS')).toBe('WAITING');
    expect(restartWithoutSlot('RESTART_ONLY')).toBe('WAITING');
    expect(restartWithoutSlot('START_ONLY')).toBe('REJECTED');
    expect(restartWithoutSlot('NEVER')).toBe('REJECTED');
  });

  it('a waiting process is placed, in queue order, when a slot appears', () => {
    const core = makeCore();
    core.schedule(sched('first'), T0);
    core.schedule(sched('second'), T0 + 1);
    const { effects } = core.heartbeat(beat('a1', T0 + 2, [], { slots: 1 }), T0 + 2);
    expect(ofType(effects, 'launch').map((l) => l.upid)).toEqual(['first']);
    expect(core.describe('second')?.state).toBe('WAITING');
  });
});

describe('restart modes', () => {
  function end(mode: ScheduleRequest['restartMode'], reported: 'EXITED' | 'FAILED'): { state: string; round: number } {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p', { restartMode: mode }), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p', round: 0, state: 'RUNNING' }]), T0 + 1);
    core.heartbeat(beat('a1', T0 + 2, [{ upid: 'p', round: 0, state: reported, lastError: 'boom' }]), T0 + 2);
    const p = core.describe('p')!;
    return { state: p.state, round: p.round };
  }

  it('ABNORMAL (default) restarts a failure but not a clean exit', () => {
    expect(end(undefined, 'FAILED')).toEqual({ state: 'ASSIGNED', round: 1 });
    expect(end('ABNORMAL', 'EXITED')).toEqual({ state: 'EXITED', round: 0 });
  });

  it('ALWAYS restarts both; NEVER restarts neither', () => {
    expect(end('ALWAYS', 'EXITED')).toEqual({ state: 'ASSIGNED', round: 1 });
    expect(end('ALWAYS', 'FAILED')).toEqual({ state: 'ASSIGNED', round: 1 });
    expect(end('NEVER', 'FAILED')).toEqual({ state: 'FAILED', round: 0 });
    expect(end('NEVER', 'EXITED')).toEqual({ state: 'EXITED', round: 0 });
  });
});

describe('an agent that rejects a launch (no free slot there)', () => {
  it('sends the process back to matching in a new round whatever its restart mode, since it never ran', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0, [], { slots: 1 }), T0);
    core.schedule(sched('p', { restartMode: 'NEVER' }), T0);
    expect(core.describe('p')).toMatchObject({ state: 'ASSIGNED', round: 0 });
    const out = core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p', round: 0, state: 'REJECTED', lastError: 'REJECTED: no free slot on a1' }], { slots: 1 }), T0 + 1);
    // Its slot is free again (the report ends the round there), so the new round is placed at once.
    expect(core.describe('p')).toMatchObject({ state: 'ASSIGNED', round: 1, starts: 0, lastError: 'REJECTED: no free slot on a1' });
    expect(ofType(out.effects, 'launch').map((l) => [l.upid, l.round])).toEqual([['p', 1]]);
  });
});

describe('throttling', () => {
  it('a process failing in a loop starts at most once per minStartIntervalMs, and says when it is due', () => {
    const core = makeCore({ minStartIntervalMs: 2_000 });
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p'), T0);
    const fail = core.heartbeat(beat('a1', T0 + 100, [{ upid: 'p', round: 0, state: 'FAILED' }]), T0 + 100);
    expect(ofType(fail.effects, 'launch')).toEqual([]);
    expect(core.describe('p')).toMatchObject({ state: 'DIED_REQUESTED', round: 1 });
    expect(core.startDueAt('p')).toBe(T0 + 2_000);
    expect(core.nextWakeAt(T0 + 100)).toBe(T0 + 2_000);
    expect(ofType(core.tick(T0 + 1_999).effects, 'launch')).toEqual([]);
    const due = core.tick(T0 + 2_000);
    expect(ofType(due.effects, 'launch')).toMatchObject([{ upid: 'p', round: 1 }]);
  });
});

describe('terminate and restart', () => {
  it('terminate: TERMINATING with a terminate to its agent, TERMINATED when the agent reports it', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p'), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p', round: 0, state: 'RUNNING' }]), T0 + 1);
    const t = core.terminate('p', T0 + 2);
    expect(t.process.state).toBe('TERMINATING');
    expect(ofType(t.effects, 'terminate')).toEqual([{ type: 'terminate', agentId: 'a1', nodeId: 'node-a1', upid: 'p', round: 0 }]);
    core.heartbeat(beat('a1', T0 + 3, [{ upid: 'p', round: 0, state: 'TERMINATED' }]), T0 + 3);
    expect(core.describe('p')?.state).toBe('TERMINATED');
    expect(core.terminate('p', T0 + 4).effects).toEqual([]);
    expect(caught(() => core.terminate('nope', T0)).code).toBe('NOT_FOUND');
  });

  it('terminate of a process not placed is TERMINATED at once and leaves the queue', () => {
    const core = makeCore();
    core.schedule(sched('p'), T0);
    const t = core.terminate('p', T0 + 1);
    expect(t.process.state).toBe('TERMINATED');
    expect(ofType(t.effects, 'terminate')).toEqual([]);
    expect(core.state.queue).toEqual([]);
  });

  it('restart of a running process stops the old round and starts the new one, end to end', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0, [], { slots: 1 }), T0);
    core.schedule(sched('p'), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p', round: 0, state: 'RUNNING' }], { slots: 1 }), T0 + 1);
    const r = core.restart('p', T0 + 2);
    expect(ofType(r.effects, 'terminate')).toEqual([{ type: 'terminate', agentId: 'a1', nodeId: 'node-a1', upid: 'p', round: 0 }]);
    // The single slot is still held by round 0 until the agent reports it gone.
    expect(ofType(r.effects, 'launch')).toEqual([]);
    expect(core.describe('p')).toMatchObject({ state: 'WAITING', round: 1 });
    const gone = core.heartbeat(beat('a1', T0 + 3, [{ upid: 'p', round: 0, state: 'TERMINATED' }], { slots: 1 }), T0 + 3);
    expect(ofType(gone.effects, 'launch')).toMatchObject([{ agentId: 'a1', upid: 'p', round: 1 }]);
    core.heartbeat(beat('a1', T0 + 4, [{ upid: 'p', round: 1, state: 'RUNNING' }], { slots: 1 }), T0 + 4);
    expect(core.describe('p')).toMatchObject({ state: 'RUNNING', round: 1, starts: 2 });
  });

  it('restart of a final process schedules it again in a new round', () => {
    const core = makeCore();
    core.schedule(sched('p', { queueingMode: 'NEVER' }), T0);
    expect(core.describe('p')?.state).toBe('REJECTED');
    core.heartbeat(beat('a1', T0 + 1), T0 + 1);
    const r = core.restart('p', T0 + 2);
    expect(r.process).toMatchObject({ state: 'ASSIGNED', round: 1 });
  });
});

describe('placement in the core', () => {
  it('engine type, constraints and node_exclusive restrict where processes go', () => {
    const core = makeCore();
    core.heartbeat(beat('small1', T0, [], { engineType: 'small', slots: 4 }), T0);
    core.heartbeat(beat('big1', T0, [], { engineType: 'big', slots: 4, properties: { role: 'db' } }), T0);
    core.heartbeat(beat('big2', T0, [], { engineType: 'big', slots: 4, properties: { role: 'db' } }), T0);
    expect(core.schedule(sched('s', { executionEngine: 'small' }), T0).process.assigned?.agentId).toBe('small1');
    expect(core.schedule(sched('d', { constraints: { role: 'db' } }), T0).process.assigned?.agentId).toMatch(/^big/);
    const x1 = core.schedule(sched('x1', { executionEngine: 'big', nodeExclusive: 'x' }), T0).process.assigned!.nodeId;
    const x2 = core.schedule(sched('x2', { executionEngine: 'big', nodeExclusive: 'x' }), T0).process.assigned!.nodeId;
    expect(x1).not.toBe(x2);
    expect(core.schedule(sched('x3', { executionEngine: 'big', nodeExclusive: 'x' }), T0).process.state).toBe('WAITING');
  });

  it('fills the busy node before an empty one', () => {
    const core = makeCore();
    core.heartbeat(beat('a', T0, [], { slots: 3 }), T0);
    core.heartbeat(beat('b', T0, [], { slots: 3 }), T0);
    const first = core.schedule(sched('p1'), T0).process.assigned!.agentId;
    expect(core.schedule(sched('p2'), T0).process.assigned!.agentId).toBe(first);
    expect(core.schedule(sched('p3'), T0).process.assigned!.agentId).toBe(first);
    expect(core.schedule(sched('p4'), T0).process.assigned!.agentId).not.toBe(first);
  });
});

describe('engine health in the core', () => {
  it('an agent silent past the warning bound gets no new work, and gets it again once heard from', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    core.tick(T0 + 3_001);
    expect(core.state.agents.a1?.health).toBe('WARNING');
    expect(core.schedule(sched('p'), T0 + 3_002).process.state).toBe('WAITING');
    const back = core.heartbeat(beat('a1', T0 + 3_003), T0 + 3_003);
    expect(ofType(back.effects, 'launch')).toMatchObject([{ upid: 'p' }]);
  });

  it('a missing agent\'s processes are placed again or FAILED by restart mode', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0, [], { slots: 3 }), T0);
    core.schedule(sched('again', { subscribers: ['s'] }), T0);
    core.schedule(sched('never', { restartMode: 'NEVER' }), T0);
    core.schedule(sched('stopping'), T0);
    core.terminate('stopping', T0);
    core.heartbeat(beat('a2', T0 + 5_000), T0 + 5_000);
    expect(core.nextWakeAt(T0 + 5_000)).toBe(T0 + 6_001);
    const t = core.tick(T0 + 6_001);
    expect(t.missing).toEqual(['a1']);
    expect(core.describe('again')).toMatchObject({ round: 1, state: 'ASSIGNED', assigned: { agentId: 'a2' } });
    expect(core.describe('never')).toMatchObject({ round: 0, state: 'FAILED' });
    expect(core.describe('never')?.lastError).toMatch(/missing/);
    expect(core.describe('stopping')?.state).toBe('TERMINATED');
    expect(ofType(t.effects, 'notify').map((n) => n.state)).toEqual(['DIED_REQUESTED', 'ASSIGNED']);
    expect(core.state.agents.a1).toBeUndefined();
  });

  it('evacuate treats a terminated worker as missing at once and ignores its late heartbeats', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p'), T0);
    const ev = core.evacuate('node-a1', T0 + 10);
    expect(ev.agents).toEqual(['a1']);
    expect(core.describe('p')).toMatchObject({ round: 1, state: 'WAITING' });
    core.heartbeat(beat('a1', T0 + 20), T0 + 20);
    expect(core.state.agents.a1).toBeUndefined();
    expect(core.describe('p')?.state).toBe('WAITING');
    // A beat from the worker's earlier start is still a late one...
    core.heartbeat(beat('a1', T0 + 30, [], { properties: { started_at: T0 - 1_000 } }), T0 + 30);
    expect(core.state.agents.a1).toBeUndefined();
    // ...but the same worker started again (same node id, its data directory) is taken back.
    core.heartbeat(beat('a1', T0 + 40, [], { properties: { started_at: T0 + 35 } }), T0 + 40);
    expect(core.state.agents.a1).toBeDefined();
    expect(core.describe('p')).toMatchObject({ round: 1, state: 'ASSIGNED', assigned: { agentId: 'a1' } });
  });
});

describe('elastic capacity in the core', () => {
  it('asks for workers as the queue grows and retires the newest idle one as it shrinks', () => {
    const core = makeCore({ minStartIntervalMs: 0, engines: { default: { slotsPerWorker: 2, maxWorkers: 5 } } });
    const grow = core.schedule(sched('p1'), T0);
    expect(ofType(grow.effects, 'need')).toEqual([{ type: 'need', engineType: 'default', domain: 'pd_default', preserveN: 1, retire: [] }]);
    core.schedule(sched('p2'), T0);
    expect(ofType(core.schedule(sched('p3'), T0).effects, 'need')).toMatchObject([{ preserveN: 2 }]);
    core.heartbeat(beat('w1', T0 + 1), T0 + 1);
    core.heartbeat(beat('w2', T0 + 2), T0 + 2);
    core.heartbeat(beat('w3', T0 + 3), T0 + 3);
    expect(core.list({ states: ['ASSIGNED'] }).map((p) => p.assigned?.agentId)).toEqual(['w1', 'w1', 'w2']);
    // p3 on w2 exits; w2 and w3 are idle, w3 the newest.
    const shrink = core.heartbeat(beat('w2', T0 + 4, [{ upid: 'p3', round: 0, state: 'EXITED' }]), T0 + 4);
    expect(ofType(shrink.effects, 'need')).toEqual([{ type: 'need', engineType: 'default', domain: 'pd_default', preserveN: 1, retire: ['node-w3'] }]);
    expect(core.state.agents.w3?.retiring).toBe(true);
  });

  it('never retires a busy worker and honours minWorkers', () => {
    const core = makeCore({ engines: { default: { slotsPerWorker: 1, minWorkers: 1 } } });
    core.heartbeat(beat('w1', T0, [], { slots: 1 }), T0);
    core.heartbeat(beat('w2', T0 + 1, [], { slots: 1 }), T0 + 1);
    core.schedule(sched('p1'), T0 + 2);
    core.schedule(sched('p2'), T0 + 2);
    expect(core.state.needs.default?.preserveN).toBe(2);
    const fx = core.heartbeat(beat('w1', T0 + 3, [{ upid: 'p1', round: 0, state: 'EXITED' }], { slots: 1 }), T0 + 3).effects;
    expect(ofType(fx, 'need')).toEqual([{ type: 'need', engineType: 'default', domain: 'pd_default', preserveN: 1, retire: ['node-w1'] }]);
  });
});

describe('system boot', () => {
  it('recovered restartable processes are held in UNSCHEDULED_PENDING until boot ends; others fail', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('old', T0), T0);
    core.schedule(sched('keep'), T0);
    core.schedule(sched('drop', { restartMode: 'NEVER' }), T0);
    core.evacuate('old', T0);
    expect(core.describe('drop')?.state).toBe('FAILED');
    core.setBooting(true, T0 + 1);
    const rec = core.recover(T0 + 1);
    expect(rec.recovered).toEqual(['keep']);
    expect(core.describe('keep')).toMatchObject({ state: 'UNSCHEDULED_PENDING', round: 2 });
    core.heartbeat(beat('new', T0 + 2), T0 + 2);
    expect(core.describe('keep')?.state).toBe('UNSCHEDULED_PENDING');
    const end = core.setBooting(false, T0 + 3);
    expect(ofType(end.effects, 'launch')).toMatchObject([{ agentId: 'new', upid: 'keep', round: 2 }]);
  });
});

describe('durable state', () => {
  it('survives a JSON round trip and the core continues from it', () => {
    const core = makeCore({ minStartIntervalMs: 0 });
    core.heartbeat(beat('a1', T0, [], { slots: 1 }), T0);
    core.schedule(sched('p1', { subscribers: ['s'] }), T0);
    core.schedule(sched('p2'), T0);
    const copy = JSON.parse(JSON.stringify(core.state));
    expect(copy).toEqual(core.state);
    const revived = new DispatcherCore(core.options, copy);
    revived.heartbeat(beat('a1', T0 + 1, [{ upid: 'p1', round: 0, state: 'RUNNING' }], { slots: 1 }), T0 + 1);
    const fx = revived.heartbeat(beat('a1', T0 + 2, [{ upid: 'p1', round: 0, state: 'EXITED' }], { slots: 1 }), T0 + 2).effects;
    expect(ofType(fx, 'launch')).toMatchObject([{ upid: 'p2', agentId: 'a1' }]);
    expect(revived.describe('p1')?.state).toBe('EXITED');
    expect(JSON.parse(JSON.stringify(revived.state))).toEqual(revived.state);
  });

  it('describe and list hand out copies, filtered by state', () => {
    const core = makeCore();
    core.schedule(sched('p1'), T0);
    core.schedule(sched('p2', { queueingMode: 'NEVER' }), T0);
    const view = core.describe('p1')!;
    view.state = 'RUNNING';
    expect(core.describe('p1')?.state).toBe('WAITING');
    expect(core.list({ states: ['REJECTED'] }).map((p) => p.upid)).toEqual(['p2']);
    expect(core.describe('nope')).toBeUndefined();
  });
});

describe('cost and changes', () => {
  it('a heartbeat that changes nothing does no matching pass and plans no need', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    core.schedule(sched('p1'), T0);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 1);
    core.takeChanges();
    const passes = { ...core.passes };
    const again = core.heartbeat(beat('a1', T0 + 2, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), T0 + 2);
    expect(again.effects).toEqual([]);
    expect(core.passes).toEqual(passes);
    // Only the agent's last-heard time changed.
    expect(core.takeChanges()).toEqual({ processes: [], created: [], agents: ['a1'], agentSetChanged: false });
    // A slot freed is a matching pass.
    core.schedule(sched('p2'), T0 + 3);
    core.schedule(sched('p3'), T0 + 3);
    expect(core.describe('p3')?.state).toBe('WAITING');
    const before = core.passes.matching;
    core.heartbeat(beat('a1', T0 + 4, [{ upid: 'p1', round: 0, state: 'EXITED' }, { upid: 'p2', round: 0, state: 'RUNNING' }]), T0 + 4);
    expect(core.passes.matching).toBe(before + 1);
    expect(core.describe('p3')?.state).toBe('ASSIGNED');
  });

  it('reports the processes and agents a call changed', () => {
    const core = makeCore();
    core.heartbeat(beat('a1', T0), T0);
    expect(core.takeChanges()).toEqual({ processes: [], created: [], agents: ['a1'], agentSetChanged: true });
    core.schedule(sched('p1'), T0);
    core.schedule(sched('p2'), T0);
    core.schedule(sched('p3'), T0);
    const c = core.takeChanges();
    expect(c.created).toEqual(['p1', 'p2', 'p3']);
    expect(c.processes.sort()).toEqual(['p1', 'p2', 'p3']);
    expect(c.agents).toEqual(['a1']);
    core.heartbeat(beat('a1', T0 + 1, [{ upid: 'p2', round: 0, state: 'RUNNING' }, { upid: 'p1', round: 0, state: 'PENDING' }]), T0 + 1);
    expect(core.takeChanges().processes.sort()).toEqual(['p1', 'p2']);
    core.evacuate('a1', T0 + 2);
    const gone = core.takeChanges();
    expect(gone.agents).toEqual(['a1']);
    expect(gone.agentSetChanged).toBe(true);
    expect(core.state.agents.a1).toBeUndefined();
  });

  it('gives what a core rebuilt from the state on every call gives (a full pass and full need each time)', () => {
    // A small deterministic random walk over schedules, heartbeats, terminations, restarts, ticks.
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const options: Partial<DispatcherOptions> = { minStartIntervalMs: 50, heartbeatWarningMs: 300, heartbeatMissingMs: 600, engines: { default: { spareWorkers: 1 } } };
    const kept = makeCore(options);
    let state = structuredClone(kept.state);
    const fresh = () => new DispatcherCore({ ...DISPATCHER_DEFAULTS, ...options }, state);
    const held = new Map<string, Array<{ upid: string; round: number; state: AgentProcessReport['state'] }>>();
    let now = T0;
    for (let step = 0; step < 1500; step++) {
      now += rnd(40);
      const op = rnd(10);
      const run = (f: (c: DispatcherCore) => { effects: DispatcherEffect[] }): void => {
        const a = f(kept).effects;
        const c = fresh();
        const b = f(c).effects;
        state = structuredClone(c.state);
        expect(a).toEqual(b);
        expect(kept.state).toEqual(state);
        expect(kept.nextWakeAt(now)).toBe(c.nextWakeAt(now));
        for (const e of a) {
          if (e.type === 'launch') {
            const list = held.get(e.agentId) ?? [];
            held.set(e.agentId, [...list.filter((x) => x.upid !== e.upid), { upid: e.upid, round: e.round, state: 'RUNNING' }]);
          }
          if (e.type === 'cleanup' || e.type === 'terminate') held.set(e.agentId, (held.get(e.agentId) ?? []).filter((x) => !(x.upid === e.upid && x.round === e.round)));
        }
      };
      const agent = `a${rnd(4)}`;
      const upid = `p${rnd(30)}`;
      if (op < 3) {
        // The same parameters for the same upid: a repeat is not a refusal.
        const n = Number(upid.slice(1));
        const req = sched(upid, { ...(n % 4 === 0 ? { nodeExclusive: 'x' } : {}), ...(n % 5 === 0 ? { queueingMode: 'NEVER' as const } : {}) });
        run((c) => c.schedule(req, now));
      } else if (op < 6) {
        const list = held.get(agent) ?? [];
        if (list.length > 0 && rnd(3) === 0) list[rnd(list.length)]!.state = rnd(2) === 0 ? 'EXITED' : 'FAILED';
        const hb = beat(agent, now, list.map((x) => ({ ...x })), { slots: 1 + rnd(3), properties: { hostname: agent, zone: rnd(6) === 0 ? 'b' : 'a' } });
        run((c) => c.heartbeat(structuredClone(hb), now));
        held.set(agent, list.filter((x) => x.state === 'RUNNING'));
      } else if (op === 6 && kept.describe(upid)) run((c) => c.terminate(upid, now));
      else if (op === 7 && kept.describe(upid)) run((c) => c.restart(upid, now));
      else if (op === 8) run((c) => c.tick(now));
      else if (op === 9 && rnd(10) === 0) run((c) => c.evacuate(agent, now));
    }
    expect(Object.keys(kept.state.processes).length).toBeGreaterThan(10);
  });

  it('keeps its busy-worker and retiree counts right when agents share nodes, move and change engine type', () => {
    // As above, but the plans' counts are kept across calls: two agents a node, nodes and engine types
    // that change under an agent, processes bound to an engine type, and needs that grow and shrink.
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // The high bits: the low bits of this generator repeat after a few steps.
      return Math.floor(seed / 2 ** 15) % n;
    };
    const options: Partial<DispatcherOptions> = {
      minStartIntervalMs: 0,
      heartbeatWarningMs: 300,
      heartbeatMissingMs: 600,
      engines: { default: { spareWorkers: 1, slotsPerWorker: 2 }, big: { minWorkers: 1 } },
    };
    const kept = makeCore(options);
    let state = structuredClone(kept.state);
    const held = new Map<string, Array<{ upid: string; round: number; state: AgentProcessReport['state'] }>>();
    let now = T0;
    let retired = 0;
    for (let step = 0; step < 1500; step++) {
      now += rnd(40);
      const run = (f: (c: DispatcherCore) => { effects: DispatcherEffect[] }): void => {
        const a = f(kept).effects;
        const c = new DispatcherCore({ ...DISPATCHER_DEFAULTS, ...options }, state);
        const b = f(c).effects;
        state = structuredClone(c.state);
        expect(a).toEqual(b);
        expect(kept.state).toEqual(state);
        for (const e of a) {
          if (e.type === 'need') retired += e.retire.length;
          if (e.type === 'launch') held.set(e.agentId, [...(held.get(e.agentId) ?? []).filter((x) => x.upid !== e.upid), { upid: e.upid, round: e.round, state: 'RUNNING' }]);
          if (e.type === 'cleanup' || e.type === 'terminate') held.set(e.agentId, (held.get(e.agentId) ?? []).filter((x) => !(x.upid === e.upid && x.round === e.round)));
        }
      };
      const op = rnd(10);
      const agent = `a${rnd(6)}`;
      const upid = `p${rnd(20)}`;
      if (op < 2) {
        const n = Number(upid.slice(1));
        run((c) => c.schedule(sched(upid, n % 3 === 0 ? { executionEngine: 'big' } : {}), now));
      } else if (op < 7) {
        const list = held.get(agent) ?? [];
        for (const x of list) if (rnd(3) === 0) x.state = 'EXITED';
        const n = Number(agent.slice(1));
        // Mostly two agents a node; now and then an agent moves or changes its engine type.
        const nodeId = rnd(8) === 0 ? `node-${rnd(4)}` : `node-${n >> 1}`;
        const engineType = rnd(8) === 0 ? (n % 2 === 0 ? 'big' : 'default') : n < 4 ? 'default' : 'big';
        const hb = beat(agent, now, list.map((x) => ({ ...x })), { nodeId, engineType, slots: 1 + rnd(2) });
        run((c) => c.heartbeat(structuredClone(hb), now));
        held.set(agent, list.filter((x) => x.state === 'RUNNING'));
      } else if (op === 7 && kept.describe(upid)) {
        const stop = rnd(4) > 0;
        run((c) => (stop ? c.terminate(upid, now) : c.restart(upid, now)));
      } else if (op === 8) run((c) => c.tick(now));
      else if (op === 9 && rnd(8) === 0) run((c) => c.evacuate(agent, now));
    }
    // The walk did shrink, naming retirees.
    expect(retired).toBeGreaterThan(0);
  });
});
