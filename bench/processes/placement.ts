/**
 * Placement rate: `processes` processes over `agents` execution engine agents of `slots` slots each,
 * timed from the first schedule until every process is RUNNING (every slot, when there are fewer
 * slots than processes; the rest stay WAITING), two ways, each cut off after a budget.
 *
 * - `coreAlone`: the pure DispatcherCore in this process, no actor, no store: every agent registers
 *   with a heartbeat, then each schedule is followed at once by the heartbeat of the agent it was
 *   placed on, reporting the new round RUNNING (what the real agent does on a change). The ceiling.
 * - `actorPlacement`: the real dispatcher actor (`dispatcher/main`, sync durability) in an
 *   ActorSystem on a LevelDB directory, with the stand-in agents of ./stand-in-agent.ts (one actor per
 *   simulated worker) answering its launch tells and heartbeating every second, and a watcher that
 *   every process names as its subscriber. Schedules are asks, `inFlight` at once; the clock stops
 *   when the watcher was told the last process RUNNING. The EPU domain `pd_default` the dispatcher
 *   asks for capacity does not exist here: its asks fail at once and are retried on its timer, which
 *   the figure includes (as it would on a cluster without the domain).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DispatcherCore, type AgentHeartbeat } from '../../src/actors/dispatcher/core.js';
import { dispatcherType } from '../../src/actors/dispatcher/dispatcher.js';
import { DISPATCHER_REF, agentRef, type DispatcherStatus } from '../../src/actors/dispatcher/protocol.js';
import { askRole } from '../../src/actors/role-reply.js';
import type { RoleEnv } from '../../src/actors/role-env.js';
import { systemClock } from '../../src/runtime/clock.js';
import { silentLogger } from '../../src/runtime/logger.js';
import { ActorSystem } from '../../src/runtime/runtime.js';
import { Store } from '../../src/runtime/store.js';
import { inParallel, sleep } from '../epu/epu-node.js';
import { RunningSink, WATCH_TYPE, standInAgentType, watchType } from './stand-in-agent.js';

export interface PlacementOptions {
  agents: number;
  slots: number;
  processes: number;
}

export interface PlacementResult {
  /** First schedule to the last process RUNNING (to the budget's end when cut off). */
  ms: number;
  running: number;
  /** RUNNING wanted: every process, or every slot when there are fewer slots than processes. */
  want: number;
  /** False when the budget ran out first: the rate is then over the first `running` processes only. */
  complete: boolean;
  rate: number;
  /** Schedules made (core) or answered (actor) by the end. */
  scheduled: number;
  /** First schedule to the last schedule answered (actor only; undefined when cut off before). */
  scheduledMs?: number;
}

const DEFINITION = { id: 'sleeper', type: 'exec', executable: { argv: ['sleep', '3600'] }, config: {} };
const agentId = (i: number): string => `w${String(i).padStart(4, '0')}`;
const upidOf = (k: number): string => `p${String(k).padStart(5, '0')}`;

/** RUNNING processes the run can reach: the slots bound it. */
export const reachable = (o: PlacementOptions): number => Math.min(o.processes, o.agents * o.slots);

/**
 * The pure core: schedule, then the placed agent's heartbeat reporting it RUNNING, per process; stops
 * scheduling once `budgetMs` has passed.
 */
export function coreAlone(o: PlacementOptions & { budgetMs: number }): PlacementResult {
  const core = new DispatcherCore();
  const held = new Map<string, Array<{ upid: string; round: number }>>();
  let at = 0;
  const beat = (id: string): AgentHeartbeat => ({
    agentId: id,
    nodeId: id,
    engineType: 'default',
    slots: o.slots,
    processes: (held.get(id) ?? []).map((r) => ({ ...r, state: 'RUNNING' as const })),
    properties: { hostname: id },
    at: ++at,
  });
  for (let i = 0; i < o.agents; i++) core.heartbeat(beat(agentId(i)), performance.now());
  core.createDefinition(DEFINITION);
  const t0 = performance.now();
  let k = 0;
  for (; k < o.processes && performance.now() - t0 < o.budgetMs; k++) {
    const out = core.schedule({ upid: upidOf(k), definitionId: DEFINITION.id }, performance.now());
    for (const e of out.effects) {
      if (e.type !== 'launch') continue;
      let list = held.get(e.agentId);
      if (!list) held.set(e.agentId, (list = []));
      list.push({ upid: e.upid, round: e.round });
      core.heartbeat(beat(e.agentId), performance.now());
    }
  }
  const ms = performance.now() - t0;
  const running = Object.values(core.state.processes).filter((p) => p.state === 'RUNNING').length;
  const want = reachable(o);
  return { ms, running, want, complete: running === want, rate: (running * 1000) / ms, scheduled: k };
}

/** The dispatcher actor with stand-in agents on a store in `dir` (see the module comment). */
export async function actorPlacement(dir: string, o: PlacementOptions & { inFlight: number; heartbeatMs: number; budgetMs: number }): Promise<PlacementResult> {
  const store = await Store.open(join(dir, 'store'));
  const sink = new RunningSink();
  let system: ActorSystem | undefined;
  const env: RoleEnv = {
    service: () => system!,
    members: () => [],
    dataDir: join(dir, 'role'),
    clock: systemClock,
    log: silentLogger,
  };
  system = new ActorSystem({ store, types: [dispatcherType(env), standInAgentType({ slots: o.slots, heartbeatMs: o.heartbeatMs }), watchType(sink)] });
  const sys = system;
  try {
    const ids = Array.from({ length: o.agents }, (_, i) => agentId(i));
    await inParallel(ids, 64, async (id) => {
      await sys.tell(agentRef(id), { start: true });
    });
    // Every agent registered before the first schedule.
    const deadline = performance.now() + 60_000;
    for (;;) {
      const status = await askRole<DispatcherStatus>(sys, DISPATCHER_REF, { status: true }, 30_000);
      if (status.agents.length === o.agents) break;
      if (performance.now() > deadline) throw new Error(`${status.agents.length} of ${o.agents} agents registered within 60 s`);
      await sleep(50);
    }
    await askRole(sys, DISPATCHER_REF, { createDefinition: DEFINITION }, 30_000);
    const upids = Array.from({ length: o.processes }, (_, k) => upidOf(k));
    const subscriber = `${WATCH_TYPE}/w`;
    const want = reachable(o);
    let answered = 0;
    let stop = false;
    let scheduledMs: number | undefined;
    let scheduleError: unknown;
    const t0 = performance.now();
    const scheduling = inParallel(upids, o.inFlight, async (upid) => {
      if (stop) return;
      await askRole(sys, DISPATCHER_REF, { schedule: { upid, definitionId: DEFINITION.id, subscribers: [subscriber] } }, o.budgetMs + 30_000);
      answered++;
    }).then(
      () => (scheduledMs = performance.now() - t0),
      (err: unknown) => (scheduleError ??= err),
    );
    // The budget ends the wait, not the run: what was RUNNING by then is the figure (marked cut off).
    const complete = await sink.whenRunning(want, o.budgetMs).then(
      () => true,
      () => false,
    );
    stop = true;
    if (scheduleError !== undefined) throw scheduleError;
    const running = sink.runningAt.size;
    const ms = complete ? Math.max(...sink.runningAt.values()) - t0 : performance.now() - t0;
    if (complete) await scheduling;
    if (scheduleError !== undefined) throw scheduleError;
    return { ms, running, want, complete, rate: (running * 1000) / ms, scheduled: answered, ...(scheduledMs !== undefined ? { scheduledMs } : {}) };
  } finally {
    await sys.shutdown();
    await store.close();
  }
}
