/**
 * The dispatcher actor on one runtime with a real store and a FakeClock. Execution engine agents
 * are stand-ins: an `ee-agent` type that records what the dispatcher tells it, and heartbeats the
 * test sends in their name. Covers placement and the agent's reports, re-placement when an agent
 * falls silent, termination, refusals that leave the state alone, a need no domain takes, and the
 * state across a node restart.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { defineActor, type ActorType } from '../../../src/runtime/actor-type.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { askRole } from '../../../src/actors/role-reply.js';
import type { RoleEnv, RoleMember } from '../../../src/actors/role-env.js';
import type { ProcessRecord } from '../../../src/actors/dispatcher/core.js';
import { AGENT_CHUNK, dispatcherType, emptyDispatcherActorState, type DispatcherActorState, type StoredCoreState } from '../../../src/actors/dispatcher/dispatcher.js';
import { DispatcherCore, emptyDispatcherState } from '../../../src/actors/dispatcher/core.js';
import type { ActorContext } from '../../../src/runtime/actor-type.js';
import { DISPATCHER_ROLE_TEST_PRESET } from '../../../src/actors/dispatcher/options.js';
import { DISPATCHER_REF, type DispatcherReplies } from '../../../src/actors/dispatcher/protocol.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

/** A stand-in agent: keeps every message it is told; `{get: true}` answers them. */
const fakeAgent = defineActor<{ mail: unknown[] }>({
  name: 'ee-agent',
  initialState: () => ({ mail: [] }),
  handle(state, message, ctx) {
    if ((message as { get?: unknown }).get === true) {
      ctx.reply(state.mail);
      return state;
    }
    return { mail: [...state.mail, message] };
  },
});

const SLEEP = { id: 'sleep', type: 'exec', executable: { argv: ['sleep', '1000'] }, config: { a: 1 } };

describe('the dispatcher actor', () => {
  const nodes = useTestNodes();

  /** The membership listener the dispatcher registered, to play the cluster's view changes. */
  let membersChanged: ((members: readonly RoleMember[]) => void) | undefined;

  async function start(): Promise<TestNode> {
    let node: TestNode | undefined;
    const clock = new FakeClock();
    const env: RoleEnv = {
      service: () => node!.system,
      members: () => [],
      watchMembers: (listener) => {
        membersChanged = listener;
        return () => (membersChanged = undefined);
      },
      dataDir: join(nodes.tempDir(), 'role'),
      clock,
      log: silentLogger,
    };
    const types: ActorType<any>[] = [dispatcherType(env, DISPATCHER_ROLE_TEST_PRESET), fakeAgent];
    node = await nodes.node(types, { clock });
    return node;
  }

  const ask = <Op extends keyof DispatcherReplies>(node: TestNode, op: Op, body: unknown) =>
    within(askRole<DispatcherReplies[Op]>(node.system, DISPATCHER_REF, { [op]: body }), `ask ${op}`);

  const mail = (node: TestNode, nodeId: string) => within(node.system.ask<unknown[]>({ type: 'ee-agent', id: nodeId }, { get: true }), `mail of ${nodeId}`);

  let beatAt = 0;
  const beat = (node: TestNode, agent: string, processes: Array<{ upid: string; round: number; state: string }> = [], properties: Record<string, unknown> = {}) =>
    node.system.tell(DISPATCHER_REF, {
      heartbeat: { agentId: agent, nodeId: `n-${agent}`, engineType: 'default', slots: 1, processes, properties, at: ++beatAt },
    });

  async function until(node: TestNode, upid: string, what: string, check: (p: ProcessRecord) => boolean, step?: () => void): Promise<ProcessRecord> {
    let last: ProcessRecord | undefined;
    try {
      return (await waitFor(
        async () => {
          last = await ask(node, 'describe', { upid });
          return check(last) ? last : undefined;
        },
        { what, ...(step ? { step } : {}) },
      ))!;
    } catch (err) {
      throw new Error(`${(err as Error).message}; last: ${last?.state} round ${last?.round}`);
    }
  }

  it('re-places the processes of a worker the cluster declares down at once, without waiting for its silence', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await beat(node, 'a1');
    await ask(node, 'schedule', { upid: 'p', definitionId: 'sleep' });
    await until(node, 'p', 'ASSIGNED to a1', (p) => p.assigned?.agentId === 'a1');
    await beat(node, 'a2');
    const member = (id: string, status: RoleMember['status']): RoleMember => ({ id, address: '127.0.0.1:1', role: 'worker', status });
    membersChanged!([member('n-a1', 'down'), member('n-a2', 'up')]);
    // No clock step: heartbeat silence cannot be what moved it to its next round.
    await until(node, 'p', 'in its next round', (p) => p.round === 1);
    // Placed once the minimum time between starts (200 ms here) has passed; a2 beats meanwhile.
    const moved = await until(node, 'p', 'placed again on a2', (p) => p.assigned?.agentId === 'a2', () => {
      node.clock.advance(50);
      void beat(node, 'a2');
    });
    expect(moved).toMatchObject({ round: 1, state: 'ASSIGNED' });
  });

  it('queues a process with no agent, launches it on the first agent, and follows its reports', async () => {
    const node = await start();
    expect(await ask(node, 'createDefinition', SLEEP)).toEqual(SLEEP);
    const scheduled = await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep', configuration: { b: 2 }, subscribers: ['ee-agent/watcher', 'not-a-ref'] });
    expect(scheduled).toMatchObject({ upid: 'p1', state: 'WAITING', round: 0 });

    await beat(node, 'a1');
    const assigned = await until(node, 'p1', 'ASSIGNED', (p) => p.state === 'ASSIGNED');
    expect(assigned.assigned).toEqual({ agentId: 'a1', nodeId: 'n-a1' });
    const launches = await waitFor(async () => (await mail(node, 'n-a1')).filter((m) => 'launch' in (m as object)));
    expect(launches).toEqual([{ launch: { upid: 'p1', round: 0, definition: SLEEP, configuration: { a: 1, b: 2 } } }]);

    await beat(node, 'a1', [{ upid: 'p1', round: 0, state: 'RUNNING' }]);
    await until(node, 'p1', 'RUNNING', (p) => p.state === 'RUNNING');
    // An actor subscriber is told each state; one that is not an actor ref is skipped.
    const told = (await waitFor(async () => {
      const m = (await mail(node, 'watcher')) as Array<{ process: { state: string } }>;
      return m.some((x) => x.process.state === 'RUNNING') && m;
    })) as Array<{ process: { state: string } }>;
    expect(told.map((x) => x.process.state)).toEqual(['REQUESTED', 'WAITING', 'ASSIGNED', 'RUNNING']);
    expect((await ask(node, 'list', { states: ['RUNNING'] })).processes.map((p) => p.upid)).toEqual(['p1']);
    expect((await ask(node, 'list', { states: ['WAITING'] })).processes).toEqual([]);
  });

  it('re-places a process in the next round when its agent falls silent', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await beat(node, 'a1');
    await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep' });
    await until(node, 'p1', 'ASSIGNED on a1', (p) => p.state === 'ASSIGNED' && p.assigned?.agentId === 'a1');
    await beat(node, 'a1', [{ upid: 'p1', round: 0, state: 'RUNNING' }]);
    await until(node, 'p1', 'RUNNING', (p) => p.state === 'RUNNING');

    // a2 keeps beating while a1 is silent past heartbeatMissingMs.
    await beat(node, 'a2');
    const moved = await until(
      node,
      'p1',
      'round 1 on a2',
      (p) => p.round === 1 && p.assigned?.agentId === 'a2',
      () => {
        node.clock.advance(20);
        void beat(node, 'a2').catch(() => {});
      },
    );
    expect(moved.state).toBe('ASSIGNED');
    expect(moved.lastError).toMatch(/a1 missing/);
    const launches = await waitFor(async () => (await mail(node, 'n-a2')).filter((m) => 'launch' in (m as object)));
    expect(launches).toMatchObject([{ launch: { upid: 'p1', round: 1 } }]);
    // The silent agent is told to stop the round nobody tracks any more, should it be alive.
    const stops = await waitFor(async () => (await mail(node, 'n-a1')).filter((m) => 'terminate' in (m as object)));
    expect(stops).toEqual([{ terminate: { upid: 'p1', round: 0 } }]);
    const status = await ask(node, 'status', true);
    expect(status.agents.map((a) => a.agentId)).toEqual(['a2']);
  });

  it('terminates a placed process through its agent, and one not placed at once', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await beat(node, 'a1');
    await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep' });
    await until(node, 'p1', 'ASSIGNED', (p) => p.state === 'ASSIGNED');
    expect(await ask(node, 'terminate', { upid: 'p1' })).toMatchObject({ state: 'TERMINATING' });
    const stops = await waitFor(async () => (await mail(node, 'n-a1')).filter((m) => 'terminate' in (m as object)));
    expect(stops).toEqual([{ terminate: { upid: 'p1', round: 0 } }]);
    await beat(node, 'a1', [{ upid: 'p1', round: 0, state: 'TERMINATED' }]);
    await until(node, 'p1', 'TERMINATED', (p) => p.state === 'TERMINATED');
    const cleanups = await waitFor(async () => (await mail(node, 'n-a1')).filter((m) => 'cleanup' in (m as object)));
    expect(cleanups).toEqual([{ cleanup: { upid: 'p1', round: 0 } }]);

    await ask(node, 'schedule', { upid: 'p2', definitionId: 'sleep', executionEngine: 'gpu' });
    expect(await ask(node, 'terminate', { upid: 'p2' })).toMatchObject({ state: 'TERMINATED' });
  });

  it('refuses bad input with the right code and leaves the state as it was', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep' });
    const before = await ask(node, 'describe', { upid: 'p1' });

    await expect(ask(node, 'createDefinition', SLEEP)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep', configuration: { other: true } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/different configuration/),
    });
    await expect(ask(node, 'schedule', { upid: 'p9', definitionId: 'nope' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(ask(node, 'schedule', { upid: 'p9', definitionId: 'sleep', constraints: { cores: { '~': 3 } } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/cores.*unknown operator/),
    });
    await expect(ask(node, 'schedule', { upid: 'p9', definitionId: 'sleep', queueingMode: 'SOMETIMES' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/schedule\.queueingMode: must be one of NEVER, ALWAYS/),
    });
    await expect(ask(node, 'describe', { upid: 'nope' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(ask(node, 'removeDefinition', { id: 'nope' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(within(node.system.tell(DISPATCHER_REF, { frobnicate: 1 }), 'tell')).rejects.toThrow();

    // A malformed heartbeat is dropped, not a crash and not a refusal.
    await node.system.tell(DISPATCHER_REF, { heartbeat: { agentId: 'a1', slots: 'many' } });
    expect(await ask(node, 'describe', { upid: 'p1' })).toEqual(before);
    expect((await ask(node, 'status', true)).agents).toEqual([]);
    expect((await ask(node, 'listDefinitions', {})).definitions.map((d) => d.id)).toEqual(['sleep']);
  });

  it('runs a definition every interval as processes <name>-<n>, at most count times, and stops when cancelled', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    const t0 = node.clock.now();
    const timer = await ask(node, 'timer', { name: 'job', definitionId: 'sleep', every: 1_000, count: 3, configuration: { result: 'results' } });
    expect(timer).toMatchObject({ name: 'job', next: t0 + 1_000, runs: 0 });
    const upids = async () => (await ask(node, 'list', {})).processes.map((p) => p.upid).sort();
    await waitFor(async () => (await upids()).length === 3, { step: () => node.clock.advance(250), what: 'three runs' });
    expect(await upids()).toEqual(['job-0', 'job-1', 'job-2']);
    const run = await ask(node, 'describe', { upid: 'job-1' });
    expect(run).toMatchObject({ restartMode: 'NEVER', configuration: { result: 'results' } });
    // Its count reached, the timer is gone; nothing more runs.
    expect((await ask(node, 'listTimers', {})).timers).toEqual([]);
    node.clock.advance(5_000);
    expect(await upids()).toHaveLength(3);

    await ask(node, 'timer', { name: 'forever', definitionId: 'sleep', every: 1_000 });
    await waitFor(async () => (await upids()).includes('forever-0'), { step: () => node.clock.advance(250), what: 'the first run' });
    expect(await ask(node, 'cancelTimer', { name: 'forever' })).toEqual({ cancelled: 'forever' });
    node.clock.advance(5_000);
    expect((await upids()).filter((u) => u.startsWith('forever'))).toEqual(['forever-0']);

    await expect(ask(node, 'timer', { name: 'x', definitionId: 'nope', every: 1_000 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(ask(node, 'timer', { name: 'x', definitionId: 'sleep' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/at .* or every/) });
    await expect(ask(node, 'cancelTimer', { name: 'x' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('holds the processes from before a system restart while the system boots, and places them when boot ends', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await beat(node, 'a1');
    await ask(node, 'schedule', { upid: 'keep', definitionId: 'sleep' });
    await ask(node, 'schedule', { upid: 'once', definitionId: 'sleep', restartMode: 'NEVER' });
    await until(node, 'keep', 'keep ASSIGNED', (p) => p.state === 'ASSIGNED');
    // The whole system went down and boots again: what ran before is from before the restart.
    const booting = await ask(node, 'boot', { booting: true, recover: true });
    expect(booting.recovered).toEqual(['keep']);
    expect(await ask(node, 'describe', { upid: 'keep' })).toMatchObject({ state: 'UNSCHEDULED_PENDING', round: 1 });
    expect(await ask(node, 'describe', { upid: 'once' })).toMatchObject({ state: 'FAILED' });
    // An agent heartbeating meanwhile gets nothing: the process waits for the boot to end.
    await beat(node, 'a2');
    node.clock.advance(500);
    expect((await ask(node, 'describe', { upid: 'keep' })).state).toBe('UNSCHEDULED_PENDING');
    await ask(node, 'boot', { booting: false });
    // Its old round holds a1's slot until a1 reports it gone or goes missing (a1 stays silent here).
    const placed = await until(node, 'keep', 'placed after the boot', (p) => p.state === 'ASSIGNED', () => {
      node.clock.advance(100);
      void beat(node, 'a2');
    });
    expect(placed.round).toBe(1);
  });

  it('keeps a need no EPU domain takes, with the reason, and tries it again', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep' });
    // This runtime has no EPU management: the reconfigure of pd_default fails.
    const status = (await waitFor(
      async () => {
        const s = await ask(node, 'status', true);
        return s.capacity.default?.lastError !== undefined && s;
      },
      { what: 'a capacity error recorded' },
    )) as DispatcherReplies['status'];
    expect(status.capacity.default).toMatchObject({ wanted: 1, applied: false, subscribed: false });
  });

  it('keeps its definitions and processes across a restart of the node', async () => {
    const node = await start();
    await ask(node, 'createDefinition', SLEEP);
    await beat(node, 'a1');
    await ask(node, 'schedule', { upid: 'p1', definitionId: 'sleep' });
    const before = await until(node, 'p1', 'ASSIGNED', (p) => p.state === 'ASSIGNED');
    await node.restart();
    expect(await ask(node, 'describe', { upid: 'p1' })).toEqual(before);
    expect(await ask(node, 'describeDefinition', { id: 'sleep' })).toEqual(SLEEP);
    // It goes on from there: the agent's report moves the process along.
    await beat(node, 'a1', [{ upid: 'p1', round: 0, state: 'RUNNING' }]);
    await until(node, 'p1', 'RUNNING after the restart', (p) => p.state === 'RUNNING');
  });
});

describe('the dispatcher actor\'s records', () => {
  /** A turn context over a map of records, logging the record writes of the turn. */
  function fakeCtx(records: Map<string, unknown>, now: number): ActorContext & { puts: string[]; deletes: string[] } {
    const puts: string[] = [];
    const deletes: string[] = [];
    return {
      self: DISPATCHER_REF,
      sender: undefined,
      seq: 1,
      now,
      log: silentLogger,
      puts,
      deletes,
      tell() {},
      ask: () => Promise.reject(new Error('no asks here')),
      reply() {},
      spawn() {},
      stop() {},
      after() {},
      every() {},
      cancelTimer() {},
      record: (name) => records.get(name),
      putRecord(name, value) {
        puts.push(name);
        records.set(name, JSON.parse(JSON.stringify(value)));
      },
      deleteRecord(name) {
        deletes.push(name);
        records.delete(name);
      },
    };
  }
  const env = (): RoleEnv => ({ service: () => ({ ask: () => Promise.reject(new Error('no domains here')), tell: () => Promise.resolve() }) as never, members: () => [], dataDir: '/nonexistent', clock: new FakeClock(), log: silentLogger });
  const hb = (agentId: string, at: number, processes: Array<{ upid: string; round: number; state: string }> = []) => ({
    heartbeat: { agentId, nodeId: `n-${agentId}`, engineType: 'default', slots: 2, processes, properties: {}, at },
  });

  /** A dispatcher actor activated on `records`; `turn` handles one message at `now` and returns its context. */
  async function activated() {
    const type = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
    const records = new Map<string, unknown>();
    const d = {
      records,
      state: await type.onActivate!(emptyDispatcherActorState(), fakeCtx(records, 1)),
      turn: async (msg: unknown, now: number) => {
        const ctx = fakeCtx(records, now);
        d.state = await type.handle(d.state, msg, ctx);
        return ctx;
      },
    };
    return d;
  }

  it('writes only the processes and agents a turn changed, and keeps them out of the state', async () => {
    const d = await activated();
    const { records, turn } = d;
    await turn({ createDefinition: SLEEP }, 1);
    expect((await turn(hb('a1', 1), 2)).puts).toEqual(['a:a1']);
    expect((await turn({ schedule: { upid: 'p1', definitionId: 'sleep' } }, 3)).puts.sort()).toEqual(['a:a1', 'p:p1', 'pi:0']);
    expect((await turn({ schedule: { upid: 'p2', definitionId: 'sleep' } }, 4)).puts.sort()).toEqual(['a:a1', 'p:p2', 'pi:0']);
    // p1 RUNNING: its record and the agent's (last heard); p2 is not written again.
    expect((await turn(hb('a1', 5, [{ upid: 'p1', round: 0, state: 'RUNNING' }, { upid: 'p2', round: 0, state: 'PENDING' }]), 5)).puts.sort()).toEqual(['a:a1', 'p:p1', 'p:p2']);
    expect((await turn(hb('a1', 6, [{ upid: 'p1', round: 0, state: 'RUNNING' }, { upid: 'p2', round: 0, state: 'PENDING' }]), 6)).puts).toEqual(['a:a1']);
    // A read writes nothing.
    expect((await turn({ describe: { upid: 'p1' } }, 7)).puts).toEqual([]);
    const json = JSON.parse(JSON.stringify(d.state)) as DispatcherActorState;
    expect(json.core).not.toHaveProperty('processes');
    expect(json.core).not.toHaveProperty('agents');
    expect(json.core).toMatchObject({ processCount: 2, agentIds: ['a1'] });
    expect(records.get('pi:0')).toEqual(['p1', 'p2']);
    expect(records.get('p:p1')).toMatchObject({ upid: 'p1', state: 'RUNNING' });
    // A new incarnation (the JSON state and the records) rebuilds the same processes and agents.
    const again = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
    const restored = await again.onActivate!(json, fakeCtx(records, 8));
    const ctx = fakeCtx(records, 8);
    let replied: unknown;
    ctx.reply = (v) => (replied = v);
    await again.handle(restored, { list: {} }, ctx);
    expect((replied as { value: { processes: Array<{ upid: string; state: string }> } }).value.processes.map((p) => [p.upid, p.state])).toEqual([
      ['p1', 'RUNNING'],
      ['p2', 'PENDING'],
    ]);
  });

  it('keeps a bounded part of the agent id list in the state, the rest in chunk records written when they change', async () => {
    const d = await activated();
    const { records, turn } = d;
    const ids = Array.from({ length: AGENT_CHUNK + 3 }, (_, i) => `a${i}`);
    for (const id of ids) await turn(hb(id, 1), 1);
    const core = () => (JSON.parse(JSON.stringify(d.state)) as DispatcherActorState).core as StoredCoreState;
    expect(core()).toMatchObject({ agentIds: ids.slice(AGENT_CHUNK), agentChunks: 1 });
    expect(records.get('ai:0')).toEqual(ids.slice(0, AGENT_CHUNK));
    // A new agent, or a beat of a known one, leaves the full chunk alone.
    expect((await turn(hb('late', 2), 2)).puts).toEqual(['a:late']);
    expect((await turn(hb('a1', 3), 3)).puts).toEqual(['a:a1']);
    // One forgotten from the first chunk: the chunk is written again, the tail moves up.
    const gone = await turn({ evacuate: { nodeId: 'n-a1' } }, 4);
    expect(gone.deletes).toEqual(['a:a1']);
    expect(gone.puts).toEqual(['ai:0']);
    const left = [...ids.filter((id) => id !== 'a1'), 'late'];
    expect(records.get('ai:0')).toEqual(left.slice(0, AGENT_CHUNK));
    expect(core()).toMatchObject({ agentIds: left.slice(AGENT_CHUNK), agentChunks: 1 });
    // A new incarnation rebuilds every agent, in the order they registered.
    const status = async (s: DispatcherActorState) => {
      const again = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
      const ctx = fakeCtx(records, 5);
      let replied: unknown;
      ctx.reply = (v) => (replied = v);
      await again.handle(await again.onActivate!(s, fakeCtx(records, 5)), { status: true }, ctx);
      return (replied as { value: { agents: Array<{ agentId: string }> } }).value.agents.map((a) => a.agentId);
    };
    expect(await status(JSON.parse(JSON.stringify(d.state)) as DispatcherActorState)).toEqual(left);
    // So does a state from before the chunks: every id in the state, no chunk records.
    records.delete('ai:0');
    const old = JSON.parse(JSON.stringify(d.state)) as DispatcherActorState;
    const { agentChunks: _c, ...rest } = old.core as StoredCoreState;
    expect(await status({ ...old, core: { ...rest, agentIds: left } })).toEqual(left);
    // Down to fewer than a chunk: the chunk record goes, every id is in the state again.
    records.set('ai:0', left.slice(0, AGENT_CHUNK));
    for (const id of left.slice(0, 10)) await turn({ evacuate: { nodeId: `n-${id}` } }, 6);
    expect(records.has('ai:0')).toBe(false);
    expect(core().agentIds).toEqual(left.slice(10));
    expect(core()).not.toHaveProperty('agentChunks');
  });

  it('arms its tick timer again only when the wake time moved, or once it fired', async () => {
    const type = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
    const records = new Map<string, unknown>();
    let state = await type.onActivate!(emptyDispatcherActorState(), fakeCtx(records, 1));
    const timers: string[] = [];
    const turn = async (msg: unknown, now: number) => {
      const ctx = fakeCtx(records, now);
      ctx.after = (name, ms) => void timers.push(`${name} at ${now + ms}`);
      ctx.cancelTimer = (name) => void timers.push(`cancel ${name}`);
      state = await type.handle(state, msg, ctx);
    };
    const { heartbeatWarningMs: warning } = DISPATCHER_ROLE_TEST_PRESET;
    await turn({ createDefinition: SLEEP }, 1);
    expect(timers).toEqual(['cancel tick']);
    // Nothing to wake for, still: nothing armed again.
    await turn({ createDefinition: { ...SLEEP, id: 'other' } }, 1);
    expect(timers).toEqual(['cancel tick']);
    await turn(hb('a1', 2), 2);
    expect(timers.slice(1)).toEqual([`tick at ${2 + warning + 1}`]);
    // The wake time is still a1's warning bound: the timer armed stays as it is.
    await turn({ schedule: { upid: 'p1', definitionId: 'sleep' } }, 3);
    await turn({ schedule: { upid: 'p2', definitionId: 'sleep' } }, 4);
    expect(timers).toHaveLength(2);
    // Heard again: a later wake time.
    await turn(hb('a1', 5, [{ upid: 'p1', round: 0, state: 'RUNNING' }, { upid: 'p2', round: 0, state: 'RUNNING' }]), 5);
    expect(timers.slice(2)).toEqual([`tick at ${5 + warning + 1}`]);
    // A tick is the timer firing: it is armed again, for the same time as well.
    await turn({ tick: true }, 6);
    expect(timers.slice(3)).toEqual([`tick at ${5 + warning + 1}`]);
    // A new incarnation of the actor does not know what the last one armed.
    const again = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
    state = await again.onActivate!(JSON.parse(JSON.stringify(state)) as DispatcherActorState, fakeCtx(records, 7));
    const ctx = fakeCtx(records, 7);
    ctx.after = (name, ms) => void timers.push(`${name} at ${7 + ms}`);
    await again.handle(state, { schedule: { upid: 'p3', definitionId: 'sleep' } }, ctx);
    expect(timers.slice(4)).toEqual([`tick at ${5 + warning + 1}`]);
  });

  it('moves the processes and agents of a snapshot from before the records into records', async () => {
    const core = new DispatcherCore(DISPATCHER_ROLE_TEST_PRESET, emptyDispatcherState());
    core.createDefinition(SLEEP);
    core.heartbeat({ agentId: 'a1', nodeId: 'n-a1', engineType: 'default', slots: 2, processes: [], properties: {}, at: 1 }, 1);
    core.schedule({ upid: 'p1', definitionId: 'sleep' }, 2);
    core.schedule({ upid: 'p2', definitionId: 'sleep' }, 2);
    const old = JSON.parse(JSON.stringify({ core: core.state, capacity: {} })) as DispatcherActorState;
    const type = dispatcherType(env(), DISPATCHER_ROLE_TEST_PRESET);
    const records = new Map<string, unknown>();
    const ctx = fakeCtx(records, 3);
    const state = await type.onActivate!(old, ctx);
    expect(ctx.puts.sort()).toEqual(['a:a1', 'p:p1', 'p:p2', 'pi:0']);
    const json = JSON.parse(JSON.stringify(state)) as DispatcherActorState;
    expect(json.core).not.toHaveProperty('processes');
    expect(json.core).toMatchObject({ processCount: 2, agentIds: ['a1'], definitions: { sleep: SLEEP } });
    expect(records.get('p:p2')).toEqual(JSON.parse(JSON.stringify(core.state.processes.p2)));
    expect(records.get('a:a1')).toEqual(JSON.parse(JSON.stringify(core.state.agents.a1)));
    // The moved processes go on: p1's report applies.
    const next = fakeCtx(records, 4);
    await type.handle(state, hb('a1', 4, [{ upid: 'p1', round: 0, state: 'RUNNING' }]), next);
    expect(records.get('p:p1')).toMatchObject({ state: 'RUNNING' });
  });
});
