/**
 * Bench-only actor types for the placement figure, in one process beside the real dispatcher actor:
 *
 * - `ee-agent` (the stand-in): the sim driver simulates worker VMs but not the agents on them, so
 *   this type plays one execution engine agent per simulated worker. It answers each `launch` by
 *   reporting the round RUNNING in a heartbeat told to `dispatcher/main` at once (as the real agent
 *   heartbeats at once on any change), and heartbeats every `heartbeatMs` with everything it holds,
 *   so that the dispatcher never judges it silent. It starts nothing: what is timed is the
 *   dispatcher's side of placement, not an engine's start.
 * - `bench-watch` (the watcher): named as every process's subscriber, it is told each state change
 *   (`{process: {upid, state, round}}`) and counts the processes that reached RUNNING.
 *
 * Both are memory actors: the dispatcher is the one whose durability is measured.
 */
import { performance } from 'node:perf_hooks';
import { defineActor, type ActorType } from '../../src/runtime/actor-type.js';
import type { AgentHeartbeat } from '../../src/actors/dispatcher/core.js';
import { DISPATCHER_REF } from '../../src/actors/dispatcher/protocol.js';

export const STAND_IN_AGENT_TYPE = 'ee-agent';
export const WATCH_TYPE = 'bench-watch';

interface StandInState {
  /** The rounds this agent holds, RUNNING as soon as launched. */
  running: Array<{ upid: string; round: number }>;
  beats: number;
}

export interface StandInOptions {
  slots: number;
  heartbeatMs: number;
}

function beat(id: string, slots: number, s: StandInState): AgentHeartbeat {
  return {
    agentId: id,
    nodeId: id,
    engineType: 'default',
    slots,
    processes: s.running.map((r) => ({ upid: r.upid, round: r.round, state: 'RUNNING' as const })),
    properties: { hostname: id },
    // performance.now() rises within the run and orders this agent's beats; beats counts ties apart.
    at: performance.now() + s.beats / 1e6,
  };
}

/** The stand-in agent type: `{start: true}` registers it (first heartbeat, then every heartbeatMs). */
export function standInAgentType(o: StandInOptions): ActorType<StandInState> {
  return defineActor<StandInState>({
    name: STAND_IN_AGENT_TYPE,
    durability: 'memory',
    idleMs: 0,
    initialState: () => ({ running: [], beats: 0 }),
    handle(state, message, ctx) {
      const m = message as { launch?: { upid: string; round: number }; terminate?: { upid: string; round: number }; cleanup?: unknown; start?: true; beat?: true };
      let s = state;
      if (m.launch) {
        const { upid, round } = m.launch;
        s = { running: [...state.running.filter((r) => r.upid !== upid), { upid, round }], beats: state.beats };
      } else if (m.terminate) {
        const { upid, round } = m.terminate;
        s = { running: state.running.filter((r) => !(r.upid === upid && r.round === round)), beats: state.beats };
      } else if (!m.start && !m.beat) {
        return state; // cleanup: nothing held
      }
      s = { ...s, beats: s.beats + 1 };
      ctx.tell(DISPATCHER_REF, { heartbeat: beat(ctx.self.id, o.slots, s) });
      ctx.after('beat', o.heartbeatMs, { beat: true });
      return s;
    },
  });
}

/** Counts RUNNING notices; `whenRunning(n)` resolves once n distinct processes reached RUNNING. */
export class RunningSink {
  readonly runningAt = new Map<string, number>();
  private waiter: { count: number; resolve: () => void } | undefined;

  record(upid: string, state: string): void {
    if (state !== 'RUNNING' || this.runningAt.has(upid)) return;
    this.runningAt.set(upid, performance.now());
    if (this.waiter && this.runningAt.size >= this.waiter.count) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve();
    }
  }

  /** Resolves once `count` processes are RUNNING; rejects after `deadlineMs` saying how many were. */
  whenRunning(count: number, deadlineMs: number): Promise<void> {
    if (this.runningAt.size >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`${this.runningAt.size} of ${count} processes RUNNING within ${deadlineMs} ms`));
      }, deadlineMs);
      this.waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }
}

export function watchType(sink: RunningSink): ActorType<null> {
  return defineActor<null>({
    name: WATCH_TYPE,
    durability: 'memory',
    idleMs: 0,
    initialState: () => null,
    handle(state, message) {
      const p = (message as { process?: { upid: string; state: string } }).process;
      if (p) sink.record(p.upid, p.state);
      return state;
    },
  });
}
