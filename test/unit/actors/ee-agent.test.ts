/**
 * The execution-engine agent on a real store with the real stream actor and a stand-in dispatcher
 * that records its heartbeats. The runtime runs on a FakeClock (the heartbeat timer, the pump's
 * waits) that the waits advance; the engines run real processes and threads.
 */
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineActor, type ActorType } from '../../../src/runtime/actor-type.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { RoleEnv } from '../../../src/actors/role-env.js';
import { askRole } from '../../../src/actors/role-reply.js';
import type { AgentHeartbeat } from '../../../src/actors/dispatcher/core.js';
import { eeAgentRef, eeAgentType, type EeAgentType } from '../../../src/actors/ee-agent/agent.js';
import { EE_AGENT_TEST_PRESET, type EeAgentOptions } from '../../../src/actors/ee-agent/options.js';
import type { DescribeReply, LogsReply } from '../../../src/actors/ee-agent/protocol.js';
import { stream, type StreamDescription } from '../../../src/actors/stream.js';
import createWindowAverage from '../../../src/transforms/window-average.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

const NODE = 'w1';
const AGENT = eeAgentRef(NODE);
const DISPATCHER = { type: 'dispatcher', id: 'main' };

/** The dispatcher's stand-in: keeps the last heartbeat and how many came; `{get: true}` answers both. */
const recordingDispatcher = defineActor<{ last: AgentHeartbeat | null; count: number }>({
  name: 'dispatcher',
  durability: 'memory',
  initialState: () => ({ last: null, count: 0 }),
  handle(state, message, ctx) {
    const m = message as { heartbeat?: AgentHeartbeat; get?: true };
    if (m.heartbeat) return { last: m.heartbeat, count: state.count + 1 };
    ctx.reply(state);
    return state;
  },
});

interface AgentHarness {
  node: TestNode;
  clock: FakeClock;
  agent: EeAgentType;
  tell(message: unknown): Promise<void>;
  ask<T>(ref: { type: string; id: string }, message: unknown): Promise<T>;
  describe(): Promise<DescribeReply>;
  lastBeat(): Promise<AgentHeartbeat | null>;
  /** Waits (moving fake time) until the agent's description satisfies `check`. */
  until(what: string, check: (d: DescribeReply) => boolean, timeoutMs?: number): Promise<DescribeReply>;
  /** Waits until the dispatcher's last heartbeat satisfies `check`. */
  untilBeat(what: string, check: (b: AgentHeartbeat) => boolean, timeoutMs?: number): Promise<AgentHeartbeat>;
  /** Restarts the node as a restarted worker would: a new runner, the same store. */
  restartWorker(): Promise<void>;
}

/** Registers cleanup (every engine stopped, every node closed) and returns a builder of harnesses. */
function useAgentHarness(): (options?: Partial<EeAgentOptions>) => Promise<AgentHarness> {
  const nodes = useTestNodes();
  const agents: EeAgentType[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await within(a.close(), 'stopping the engines', 10_000);
  });

  return async (options = {}) => {
    const clock = new FakeClock();
    let node: TestNode | undefined;
    const dir = nodes.tempDir();
    const env: RoleEnv = {
      service: () => node!.system,
      members: () => [],
      dataDir: join(dir, 'role'),
      clock,
      log: silentLogger,
    };
    const opts = { ...EE_AGENT_TEST_PRESET, ...options };
    const types = (agent: EeAgentType): ActorType<any>[] => [agent, stream, recordingDispatcher];
    let agent = eeAgentType(env, opts);
    agents.push(agent);
    node = await nodes.node(types(agent), { clock });

    const step = () => clock.advance(5);
    const h: AgentHarness = {
      node,
      clock,
      get agent() {
        return agent;
      },
      async tell(message) {
        await within(h.node.system.tell(AGENT, message), `tell ${JSON.stringify(message)}`);
      },
      ask: <T>(ref: { type: string; id: string }, message: unknown) => within(askRole<T>(h.node.system, ref, message), `ask ${JSON.stringify(message)}`),
      describe: () => h.ask<DescribeReply>(AGENT, { describe: true }),
      async lastBeat() {
        const s = await within(h.node.system.ask<{ last: AgentHeartbeat | null }>(DISPATCHER, { get: true }), 'dispatcher get');
        return s.last;
      },
      async until(what, check, timeoutMs = 10_000) {
        let last: DescribeReply | undefined;
        try {
          return (await waitFor(
            async () => {
              last = await h.describe();
              return check(last) ? last : undefined;
            },
            { step, what, timeoutMs },
          ))!;
        } catch (err) {
          throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last?.processes)}`);
        }
      },
      async untilBeat(what, check, timeoutMs = 10_000) {
        return (await waitFor(
          async () => {
            const b = await h.lastBeat();
            return b && check(b) ? b : undefined;
          },
          { step, what, timeoutMs },
        ))!;
      },
      async restartWorker() {
        // The old worker's processes die with it.
        await within(agent.close(), 'stopping the old worker engines', 10_000);
        await h.node.stop();
        agent = eeAgentType(env, opts);
        agents.push(agent);
        (h.node.types as ActorType<any>[]).splice(0, h.node.types.length, ...types(agent));
        await h.node.start();
        await h.node.system.recover();
      },
    };
    return h;
  };
}

const sleeper = (id = 'sleeper', seconds = 30) => ({ id, type: 'exec', executable: { argv: ['sleep', String(seconds)], protocol: 'none' }, config: {} });

function launch(upid: string, round: number, definition: object, configuration: object = {}) {
  return { launch: { upid, round, definition, configuration } };
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const byUpid = (d: DescribeReply, upid: string) => d.processes.find((p) => p.upid === upid);
const stateOf = (d: DescribeReply, upid: string) => byUpid(d, upid)?.state;

describe('ee-agent: exec processes', () => {
  const harness = useAgentHarness();

  it('is a pinned, synced type that never passivates', async () => {
    const h = await harness();
    expect([h.agent.name, h.agent.placement, h.agent.durability, h.agent.idleMs]).toEqual(['ee-agent', 'pinned', 'sync', 0]);
  });

  it('runs an exec program that names no protocol as a plain program (no handshake) when it is not a transform', async () => {
    const h = await harness();
    await h.tell(launch('plain', 0, { id: 'plain', type: 'exec', executable: { argv: ['sleep', '30'] }, config: {} }));
    await h.until('plain RUNNING', (x) => stateOf(x, 'plain') === 'RUNNING');
    await h.tell({ terminate: { upid: 'plain', round: 0 } });
    await h.until('plain TERMINATED', (x) => stateOf(x, 'plain') === 'TERMINATED');
  });

  it('runs a launched program, heartbeats it RUNNING, and terminates it with its process gone', async () => {
    const h = await harness({ instanceId: 'i-123' });
    await h.tell(launch('p1', 0, sleeper()));
    const d = await h.until('p1 RUNNING', (x) => stateOf(x, 'p1') === 'RUNNING');
    const pid = byUpid(d, 'p1')!.pid!;
    expect(alive(pid)).toBe(true);
    const beat = await h.untilBeat('a beat with p1 RUNNING', (b) => b.processes.some((p) => p.upid === 'p1' && p.state === 'RUNNING'));
    expect(beat).toMatchObject({ agentId: NODE, nodeId: NODE, engineType: 'default', slots: 8, processes: [{ upid: 'p1', round: 0, state: 'RUNNING' }] });
    expect(beat.properties).toMatchObject({ role: 'worker', engine_type: 'default', os: process.platform, instance_id: 'i-123' });
    for (const key of ['hostname', 'cpu_load', 'free_memory_mb']) expect(beat.properties).toHaveProperty(key);
    expect(typeof beat.properties!['cpu_load']).toBe('number');

    await h.tell({ terminate: { upid: 'p1', round: 0 } });
    await h.until('p1 TERMINATED', (x) => stateOf(x, 'p1') === 'TERMINATED');
    expect(alive(pid)).toBe(false);
    await h.untilBeat('a beat with p1 TERMINATED', (b) => b.processes.some((p) => p.upid === 'p1' && p.state === 'TERMINATED'));

    // Cleanup forgets the ended round: no more reports of it.
    await h.tell({ cleanup: { upid: 'p1', round: 0 } });
    await h.untilBeat('a beat without p1', (b) => b.processes.length === 0);
    expect((await h.describe()).processes).toEqual([]);
  });

  it('heartbeats on its timer without any change', async () => {
    const h = await harness();
    await h.tell({ boot: true });
    const first = await h.untilBeat('a first beat', () => true);
    const later = await h.untilBeat('a later beat', (b) => b.at >= first.at + EE_AGENT_TEST_PRESET.heartbeatMs);
    expect(later.processes).toEqual([]);
  });

  it('ignores a launch of an older round, and replaces the process on a newer one', async () => {
    const h = await harness();
    await h.tell(launch('p', 1, sleeper()));
    const d1 = await h.until('p round 1 RUNNING', (x) => stateOf(x, 'p') === 'RUNNING');
    const pid1 = byUpid(d1, 'p')!.pid!;

    await h.tell(launch('p', 0, sleeper('other')));
    await h.tell({ terminate: { upid: 'p', round: 0 } });
    const d2 = await h.describe();
    expect(byUpid(d2, 'p')).toMatchObject({ round: 1, state: 'RUNNING', pid: pid1 });
    expect(alive(pid1)).toBe(true);

    await h.tell(launch('p', 2, sleeper()));
    const d3 = await h.until('p round 2 RUNNING', (x) => byUpid(x, 'p')?.round === 2 && stateOf(x, 'p') === 'RUNNING');
    const pid2 = byUpid(d3, 'p')!.pid!;
    expect(pid2).not.toBe(pid1);
    expect(alive(pid1)).toBe(false);
    expect(alive(pid2)).toBe(true);
    expect(d3.used).toBe(1);
  });

  it('rejects a launch past its slots and reports it failed with the reason', async () => {
    const h = await harness({ slots: 2 });
    await h.tell(launch('a', 0, sleeper()));
    await h.tell(launch('b', 0, sleeper()));
    await h.tell(launch('c', 0, sleeper()));
    const d = await h.until('a, b RUNNING', (x) => stateOf(x, 'a') === 'RUNNING' && stateOf(x, 'b') === 'RUNNING');
    expect(byUpid(d, 'c')).toMatchObject({ state: 'REJECTED' });
    expect(byUpid(d, 'c')!.lastError).toMatch(/^REJECTED: no free slot/);
    // The dispatcher hears REJECTED, with the reason: the process goes back to matching.
    const beat = await h.untilBeat('c reported', (b) => b.processes.some((p) => p.upid === 'c'));
    expect(beat.slots).toBe(2);
    expect(beat.processes.find((p) => p.upid === 'c')).toMatchObject({ state: 'REJECTED', lastError: expect.stringMatching(/^REJECTED/) });

    // A slot freed by a terminate takes the next launch.
    await h.tell({ terminate: { upid: 'a', round: 0 } });
    await h.until('a TERMINATED', (x) => stateOf(x, 'a') === 'TERMINATED');
    await h.tell({ cleanup: { upid: 'c', round: 0 } });
    await h.tell(launch('c', 1, sleeper()));
    await h.until('c round 1 RUNNING', (x) => byUpid(x, 'c')?.round === 1 && stateOf(x, 'c') === 'RUNNING');
  });

  it('reports a program that does not exist FAILED with the reason', async () => {
    const h = await harness();
    await h.tell(launch('nope', 0, { id: 'nope', type: 'exec', executable: { argv: ['/no/such/program-cei'], protocol: 'none' }, config: {} }));
    const d = await h.until('nope FAILED', (x) => stateOf(x, 'nope') === 'FAILED');
    expect(byUpid(d, 'nope')!.lastError).toMatch(/cannot start \/no\/such\/program-cei.*ENOENT/);
    await h.untilBeat('nope FAILED in a beat', (b) => b.processes.some((p) => p.upid === 'nope' && p.state === 'FAILED' && /ENOENT/.test(p.lastError ?? '')));
  });

  it('reports a definition it cannot run FAILED with the reason', async () => {
    const h = await harness();
    await h.tell(launch('x', 0, { id: 'x', type: 'fortran', executable: {}, config: {} }));
    const d = await h.until('x FAILED', (x) => stateOf(x, 'x') === 'FAILED');
    expect(byUpid(d, 'x')!.lastError).toMatch(/unknown type "fortran"/);
  });

  it('reports a program that exits 0 EXITED and one that exits non-zero FAILED, with its log', async () => {
    const h = await harness();
    const sh = (id: string, script: string) => ({ id, type: 'exec', executable: { argv: ['sh', '-c', script], protocol: 'none' }, config: {} });
    await h.tell(launch('ok', 0, sh('ok', 'echo hello from ok; sleep 0.4; exit 0')));
    await h.tell(launch('bad', 0, sh('bad', 'echo oops >&2; sleep 0.4; exit 3')));
    const d = await h.until('ok EXITED, bad FAILED', (x) => stateOf(x, 'ok') === 'EXITED' && stateOf(x, 'bad') === 'FAILED');
    expect(byUpid(d, 'bad')!.lastError).toMatch(/code 3/);
    expect(byUpid(d, 'ok')!.lastError).toBeUndefined();

    const logs = await h.ask<LogsReply>(AGENT, { logs: { upid: 'ok' } });
    expect(logs).toMatchObject({ upid: 'ok', round: 0 });
    expect(logs.lines.map((l) => l.line)).toContain('hello from ok');
    const since = logs.lines.at(-1)!.seq;
    expect((await h.ask<LogsReply>(AGENT, { logs: { upid: 'ok', since } })).lines).toEqual([]);
    const bad = await h.ask<LogsReply>(AGENT, { logs: { upid: 'bad' } });
    expect(bad.lines.some((l) => l.source === 'stderr' && l.line === 'oops')).toBe(true);
    await expect(h.ask(AGENT, { logs: { upid: 'unknown' } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses a malformed message', async () => {
    const h = await harness();
    await expect(h.node.system.tell(AGENT, { launch: { upid: 'p' } })).rejects.toThrow(/launch\.round/);
    await expect(h.node.system.tell(AGENT, { dance: true })).rejects.toThrow(/one of the fields launch, terminate/);
  });

  it('reports the processes of a restarted worker FAILED ("worker restarted")', async () => {
    const h = await harness();
    await h.tell(launch('p', 0, sleeper()));
    await h.tell(launch('q', 0, sleeper()));
    await h.until('p, q RUNNING', (x) => stateOf(x, 'p') === 'RUNNING' && stateOf(x, 'q') === 'RUNNING');
    await h.tell({ terminate: { upid: 'q', round: 0 } });
    await h.until('q TERMINATED', (x) => stateOf(x, 'q') === 'TERMINATED');

    await h.restartWorker();
    await h.tell({ boot: true });
    const d = await h.until('p FAILED', (x) => stateOf(x, 'p') === 'FAILED');
    expect(byUpid(d, 'p')!.lastError).toBe('worker restarted');
    expect(stateOf(d, 'q')).toBe('TERMINATED');
    await h.untilBeat('p FAILED in a beat', (b) => b.processes.some((p) => p.upid === 'p' && p.state === 'FAILED' && p.lastError === 'worker restarted'));
  });

  it('answers a terminate of a process it never had with TERMINATED', async () => {
    const h = await harness();
    await h.tell({ terminate: { upid: 'ghost', round: 3 } });
    const beat = await h.untilBeat('ghost reported', (b) => b.processes.some((p) => p.upid === 'ghost'));
    expect(beat.processes).toEqual([{ upid: 'ghost', round: 3, state: 'TERMINATED' }]);
  });
});

describe('ee-agent: transforms over the stream actor', () => {
  const harness = useAgentHarness();
  const WINDOW = 5;
  const readings = Array.from({ length: 30 }, (_, i) => ({ time: i * 0.75, value: Math.sin(i) * 10 + i, ...(i % 4 === 0 && { other: i }) }));
  /** The uninterrupted computation the pumped one must equal. */
  const reference = (): unknown[] => {
    const t = createWindowAverage({ window: WINDOW });
    return t.process(readings.map((data, offset) => ({ stream: 'in', offset, time: 0, data }))).map((o) => o.data);
  };
  const windowAverage = { id: 'wa', type: 'window-average', executable: {}, config: {} };

  const publish = (h: AgentHarness, name: string, data: unknown[], extra: object = {}) =>
    h.ask<{ first: number; last: number; duplicate: boolean }>({ type: 'stream', id: name }, { publish: { messages: data.map((d) => ({ data: d })), ...extra } });
  const describeStream = (h: AgentHarness, name: string) => h.ask<StreamDescription>({ type: 'stream', id: name }, { describe: true });
  async function readAll(h: AgentHarness, name: string): Promise<Array<{ offset: number; data: unknown }>> {
    const subscription = `check-${Math.random().toString(36).slice(2, 8)}`;
    await h.ask({ type: 'stream', id: name }, { subscribe: { subscription, from: 'earliest' } });
    const r = await h.ask<{ messages: Array<{ offset: number; data: unknown }> }>({ type: 'stream', id: name }, { read: { subscription, max: 10_000 } });
    return r.messages.map((m) => ({ offset: m.offset, data: m.data }));
  }
  /** Waits until the transform acked everything on `in`. */
  async function untilConsumed(h: AgentHarness, upid: string, count: number): Promise<void> {
    await waitFor(
      async () => {
        const d = await describeStream(h, 'in');
        return d.subscriptions.find((s) => s.name === upid)?.cursor === count;
      },
      { step: () => h.clock.advance(5), what: `${upid} consumed ${count} inputs`, timeoutMs: 20_000 },
    );
  }

  it('averages every input once into the output stream', async () => {
    const h = await harness();
    await publish(h, 'in', readings);
    await h.tell(launch('t', 0, windowAverage, { inputs: ['in'], output: 'out', window: WINDOW, batch: 7 }));
    await h.until('t RUNNING', (x) => stateOf(x, 't') === 'RUNNING', 20_000);
    await untilConsumed(h, 't', 30);
    const out = await readAll(h, 'out');
    expect(out.map((m) => m.offset)).toEqual([...Array(30).keys()]);
    expect(out.map((m) => m.data)).toEqual(reference());
    expect((await describeStream(h, 'out')).producers).toEqual({ t: 29 });
  });

  it('goes on where it stopped when terminated mid-run and launched again, nothing missing or doubled', async () => {
    const h = await harness();
    await publish(h, 'in', readings.slice(0, 15));
    const configuration = { inputs: ['in'], output: 'out', window: WINDOW, batch: 2 };
    await h.tell(launch('t', 0, windowAverage, configuration));
    await waitFor(async () => (await describeStream(h, 'out')).head >= 6, { step: () => h.clock.advance(5), what: 'some outputs', timeoutMs: 20_000 });
    await h.tell({ terminate: { upid: 't', round: 0 } });
    await h.until('t TERMINATED', (x) => stateOf(x, 't') === 'TERMINATED');
    const before = (await describeStream(h, 'out')).head;
    await publish(h, 'in', readings.slice(15));
    await h.tell(launch('t', 1, windowAverage, configuration));
    await h.until('t round 1 RUNNING', (x) => byUpid(x, 't')?.round === 1 && stateOf(x, 't') === 'RUNNING', 20_000);
    await untilConsumed(h, 't', 30);
    const out = await readAll(h, 'out');
    expect(before).toBeLessThan(30);
    expect(out.map((m) => m.offset)).toEqual([...Array(30).keys()]);
    expect(out.map((m) => m.data)).toEqual(reference());
  });

  it('rebuilds without publishing again what went out before a crash that lost the ack', async () => {
    const h = await harness();
    await publish(h, 'in', readings);
    // A previous run published the outputs of inputs 0..9 and died before its ack.
    await h.ask({ type: 'stream', id: 'in' }, { subscribe: { subscription: 't', from: 'earliest' } });
    await publish(h, 'out', reference().slice(0, 10), { producer: 't', seq: 9 });
    await h.tell(launch('t', 0, windowAverage, { inputs: ['in'], output: 'out', window: WINDOW, batch: 4 }));
    await untilConsumed(h, 't', 30);
    const out = await readAll(h, 'out');
    expect(out.map((m) => m.offset)).toEqual([...Array(30).keys()]);
    expect(out.map((m) => m.data)).toEqual(reference());
    const logs = await h.ask<LogsReply>(AGENT, { logs: { upid: 't' } });
    expect(logs.lines.some((l) => /rebuilding in 0\.\.9/.test(l.line))).toBe(true);
  });

  it('publishes a one-off process\'s result (its last stdout line, JSON when it is) to its result stream when it exits 0', async () => {
    const h = await harness();
    const job = { id: 'job', type: 'exec', executable: { argv: ['sh', '-c', 'echo working; echo \'{"answer": 42}\'; sleep 0.4'], protocol: 'none' }, config: {} };
    await h.tell(launch('j', 0, job, { result: 'results' }));
    await h.until('j EXITED', (x) => stateOf(x, 'j') === 'EXITED');
    const results = await readAll(h, 'results');
    expect(results.map((m) => m.data)).toEqual([{ upid: 'j', round: 0, exit_code: 0, result: { answer: 42 }, stdout: ['working', '{"answer": 42}'] }]);
  });

  it('appends every output once to a file sink, also what a crash left published but not written', async () => {
    const h = await harness();
    const dir = mkdtempSync(join(tmpdir(), 'cei-sink-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'averages.jsonl');
    const line = (seq: number, data: unknown) => JSON.stringify({ producer: 't', seq, data });
    await publish(h, 'in', readings);
    // A previous run published the outputs of inputs 0..9 but wrote only the first batch (0..3) to
    // the file, and was cut off in the middle of the next line.
    await h.ask({ type: 'stream', id: 'in' }, { subscribe: { subscription: 't', from: 'earliest' } });
    await publish(h, 'out', reference().slice(0, 10), { producer: 't', seq: 9 });
    writeFileSync(file, `${reference().slice(0, 4).map((d) => line(3, d)).join('\n')}\n{"producer":"t","se`);
    await h.tell(launch('t', 0, windowAverage, { inputs: ['in'], output: 'out', window: WINDOW, batch: 4, sink: { file } }));
    await untilConsumed(h, 't', 30);
    const written = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { seq: number; data: unknown });
    expect(written.map((w) => w.data)).toEqual(reference());
    expect(written.slice(0, 12).map((w) => w.seq)).toEqual([3, 3, 3, 3, 7, 7, 7, 7, 9, 9, 13, 13]);
    expect((await readAll(h, 'out')).map((m) => m.data)).toEqual(reference());
  });

  it('sends the message a transform fails on to dead-letters, keeps the rest of its batch, and does not stall its stream', async () => {
    const h = await harness();
    const counter = { id: 'counter', type: 'js', executable: { module: fileURLToPath(new URL('../../support/engines/counter.mjs', import.meta.url)) }, config: {} };
    await publish(h, 'in', [1, 2, 'boom', 4, 5]);
    // Batches of 4: the first fails on 'boom' and is fed again one message at a time.
    await h.tell(launch('c', 0, counter, { inputs: ['in'], output: 'out', batch: 4 }));
    await untilConsumed(h, 'c', 5);
    expect((await readAll(h, 'out')).map((m) => m.data)).toEqual([1, 3, 7, 12]);
    const dead = await readAll(h, 'dead-letters');
    expect(dead.map((m) => m.data)).toEqual([{ upid: 'c', stream: 'in', offset: 2, error: expect.stringMatching(/boom at offset 2/), data: 'boom' }]);
    const d = await h.until('c counted a failed batch', (x) => byUpid(x, 'c')?.failedBatches === 1);
    expect(byUpid(d, 'c')).toMatchObject({ state: 'RUNNING', lastError: expect.stringMatching(/1 message\(s\) of in failed and went to stream dead-letters \(offsets 2\).*boom/) });
    await h.untilBeat('the failure in a beat', (b) => b.processes.some((p) => p.upid === 'c' && p.state === 'RUNNING' && /boom/.test(p.lastError ?? '')));
  });

  it('reads several inputs, each as its own producer on the output', async () => {
    const h = await harness();
    const counter = { id: 'counter', type: 'js', executable: { module: fileURLToPath(new URL('../../support/engines/counter.mjs', import.meta.url)) }, config: {} };
    await publish(h, 'a', [1, 2, 3]);
    await publish(h, 'b', [10, 20]);
    await h.tell(launch('m', 0, counter, { inputs: ['a', 'b'], output: 'out', batch: 2 }));
    for (const [name, count] of [['a', 3], ['b', 2]] as const) {
      await waitFor(async () => (await describeStream(h, name)).subscriptions.find((s) => s.name === 'm')?.cursor === count, {
        step: () => h.clock.advance(5),
        what: `m consumed ${name}`,
        timeoutMs: 20_000,
      });
    }
    const out = (await readAll(h, 'out')).map((m) => m.data as number);
    expect(out).toHaveLength(5);
    expect(Math.max(...out)).toBe(36);
    expect((await describeStream(h, 'out')).producers).toEqual({ 'm.a': 2, 'm.b': 1 });
  });

  it('fails a transform whose configuration is malformed', async () => {
    const h = await harness();
    await h.tell(launch('t', 0, windowAverage, { inputs: 'in', output: 'out' }));
    const d = await h.until('t FAILED', (x) => stateOf(x, 't') === 'FAILED');
    expect(byUpid(d, 't')!.lastError).toMatch(/inputs/);
  });
});
