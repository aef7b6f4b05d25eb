/**
 * The execution-engine agent: one actor per worker (`ee-agent/<node-id>`, pinned to that node), which
 * starts, monitors and stops the processes the dispatcher places there and heartbeats them with its
 * slots to the dispatcher. Its protocol and the lifecycle of its processes are in ./protocol.ts; the
 * live engines are in ./runner.ts, outside the actor's state.
 *
 * A turn decides and records; the runner acts. A launch turn records the round as PENDING and hands
 * the start to the runner, which tells the agent how it went (`engine` messages) once the engine ran or
 * failed, so no turn waits on a process. Every change ends with a heartbeat to the dispatcher through
 * the outbox (so it leaves once, with the state that it reports); the `heartbeat` timer repeats it.
 *
 * After the worker restarted, the state still names the processes the old worker ran and the runner
 * holds none of them: on activation those are reported FAILED ('worker restarted') and the
 * dispatcher decides by their restart mode whether they run again. An actor restart on a live worker
 * finds the runner's engines and keeps them.
 */
import { freemem, hostname as osHostname, loadavg } from 'node:os';
import { defineActor, type ActorContext, type ActorType } from '../../runtime/actor-type.js';
import { NotFoundError } from '../../errors.js';
import type { AgentHeartbeat } from '../dispatcher/core.js';
import { messageValidator } from '../message-schema.js';
import { roleTurn } from '../role-reply.js';
import type { RoleEnv } from '../role-env.js';
import { resolveEeAgentOptions, type EeAgentOptions } from './options.js';
import {
  EE_AGENT_TYPE,
  EeAgentMessageSchema,
  emptyEeAgentState,
  hasEnded,
  holdsSlot,
  parseEeAgentMessage,
  type AgentProcess,
  type DescribeReply,
  type EeAgentMessage,
  type EeAgentState,
  type EngineEvent,
  type LogsReply,
} from './protocol.js';
import { Runner } from './runner.js';

export const WORKER_RESTARTED = 'worker restarted';

export function eeAgentRef(nodeId: string): { type: string; id: string } {
  return { type: EE_AGENT_TYPE, id: nodeId };
}

export interface EeAgentType extends ActorType<EeAgentState> {
  /** This node's engines (one runner per registration, so two systems in one process share nothing). */
  readonly runner: Runner;
  /** Stops every process of this node (node shutdown). */
  close(): Promise<void>;
}

/** The `ee-agent` actor type for a node; `options` over EE_AGENT_DEFAULTS. */
export function eeAgentType(env: RoleEnv, options: Partial<EeAgentOptions> = {}): EeAgentType {
  const opts = resolveEeAgentOptions(options);
  const runner = new Runner(env, opts);
  const host = opts.hostname ?? osHostname();
  /** When this worker process came up: a dispatcher that evacuated the agent takes it back only from a later start. */
  const startedAt = env.clock.now();

  function used(state: EeAgentState): number {
    return Object.values(state.processes).filter((p) => holdsSlot(p.state)).length;
  }

  function heartbeat(state: EeAgentState, ctx: ActorContext): AgentHeartbeat {
    return {
      agentId: ctx.self.id,
      nodeId: ctx.self.id,
      engineType: opts.engineType,
      slots: state.slots,
      processes: Object.entries(state.processes).map(([upid, p]) => ({
        upid,
        round: p.round,
        state: p.state,
        ...(p.lastError !== undefined && { lastError: p.lastError }),
      })),
      properties: {
        role: opts.role,
        hostname: host,
        engine_type: opts.engineType,
        cpu_load: loadavg()[0] ?? 0,
        free_memory_mb: Math.floor(freemem() / (1024 * 1024)),
        os: process.platform,
        started_at: startedAt,
        ...(opts.instanceId !== undefined && { instance_id: opts.instanceId }),
      },
      at: ctx.now,
    };
  }

  function beat(state: EeAgentState, ctx: ActorContext): void {
    ctx.tell(opts.dispatcher, { heartbeat: heartbeat(state, ctx) });
  }

  /** A copy of the table with `upid` set to `p` (the state is never changed in place). */
  function put(state: EeAgentState, upid: string, p: AgentProcess): EeAgentState {
    return { ...state, processes: { ...state.processes, [upid]: p } };
  }

  function applyEngine(state: EeAgentState, e: EngineEvent, now: number): EeAgentState | undefined {
    const p = Object.hasOwn(state.processes, e.upid) ? state.processes[e.upid]! : undefined;
    // Outcomes of a round the table no longer holds (replaced, cleaned up) change nothing.
    if (!p || p.round !== e.round) return undefined;
    switch (e.event) {
      case 'running':
        if (p.state !== 'PENDING') return undefined;
        return put(state, e.upid, { ...p, state: 'RUNNING', startedAt: now, ...(e.pid !== undefined && { pid: e.pid }) });
      case 'exited':
      case 'failed': {
        // While terminating, the terminate's `stopped` decides the outcome.
        if (p.state !== 'PENDING' && p.state !== 'RUNNING') return undefined;
        const next: AgentProcess = { ...p, state: e.event === 'exited' ? 'EXITED' : 'FAILED' };
        if (e.error !== undefined) next.lastError = e.error;
        return put(state, e.upid, next);
      }
      case 'stopped':
        if (!holdsSlot(p.state)) return undefined;
        return put(state, e.upid, { ...p, state: 'TERMINATED' });
    }
  }

  function turn(state: EeAgentState, msg: EeAgentMessage, ctx: ActorContext): { state: EeAgentState; reply: unknown; changed: boolean } {
    const same = { state, reply: null, changed: false };
    if ('launch' in msg) {
      const { upid, round, definition, configuration } = msg.launch;
      const held = Object.hasOwn(state.processes, upid) ? state.processes[upid]! : undefined;
      if (held && held.round > round) return same; // a late launch of a round already replaced
      if (held && held.round === round) {
        // A repeated launch: the runner re-tells how the start went, in case that tell was lost.
        if (held.state === 'PENDING') runner.launch(ctx.self, upid, round, definition, configuration);
        return same;
      }
      // A newer round takes the older one's slot: the runner stops the old process before starting.
      const free = state.slots - used(state) + (held && holdsSlot(held.state) ? 1 : 0);
      if (free <= 0) {
        const lastError = `REJECTED: no free slot on ${ctx.self.id} (${state.slots} of ${state.slots} in use)`;
        return { state: put(state, upid, { round, state: 'REJECTED', definition, configuration, lastError }), reply: null, changed: true };
      }
      runner.launch(ctx.self, upid, round, definition, configuration);
      return { state: put(state, upid, { round, state: 'PENDING', definition, configuration }), reply: null, changed: true };
    }
    if ('terminate' in msg) {
      const { upid, round } = msg.terminate;
      const held = Object.hasOwn(state.processes, upid) ? state.processes[upid]! : undefined;
      if (held && held.round > round) return same;
      if (!held || held.round < round) {
        // Never launched here (or launched in a round this agent never heard of): nothing runs, so it
        // is terminated already; the report lets the dispatcher close the round and clean it up.
        if (held && holdsSlot(held.state)) runner.terminate(ctx.self, upid, held.round);
        const definition = held?.definition ?? { id: '', type: 'exec', executable: {}, config: {} };
        return { state: put(state, upid, { round, state: 'TERMINATED', definition, configuration: held?.configuration ?? {} }), reply: null, changed: true };
      }
      if (held.state === 'TERMINATING' || hasEnded(held.state)) return same;
      runner.terminate(ctx.self, upid, round);
      return { state: put(state, upid, { ...held, state: 'TERMINATING' }), reply: null, changed: true };
    }
    if ('cleanup' in msg) {
      const { upid, round } = msg.cleanup;
      const held = Object.hasOwn(state.processes, upid) ? state.processes[upid]! : undefined;
      if (!held || held.round !== round || !hasEnded(held.state)) return same;
      runner.forget(upid, round);
      const processes = { ...state.processes };
      delete processes[upid];
      return { state: { ...state, processes }, reply: null, changed: true };
    }
    if ('engine' in msg) {
      const next = applyEngine(state, msg.engine, ctx.now);
      return next ? { state: next, reply: null, changed: true } : same;
    }
    if ('pump' in msg) {
      const { upid, round, error, failures } = msg.pump;
      const held = Object.hasOwn(state.processes, upid) ? state.processes[upid]! : undefined;
      if (!held || held.round !== round || (held.failedBatches ?? 0) >= failures) return same;
      return { state: put(state, upid, { ...held, lastError: error, failedBatches: failures }), reply: null, changed: true };
    }
    if ('beat' in msg || 'boot' in msg) return { state, reply: null, changed: true };
    if ('logs' in msg) {
      const { upid, since } = msg.logs;
      const kept = runner.logOf(upid);
      if (!kept && !Object.hasOwn(state.processes, upid)) throw new NotFoundError(`no process "${upid}" on ${ctx.self.id}`);
      const lines = kept ? kept.log.lines(since ?? 0).slice(-opts.maxLogLines) : [];
      const reply: LogsReply = { upid, lines, dropped: kept?.log.dropped ?? 0, ...(kept && { round: kept.round }) };
      return { state, reply, changed: false };
    }
    const reply: DescribeReply = {
      agentId: ctx.self.id,
      slots: state.slots,
      used: used(state),
      processes: Object.entries(state.processes).map(([upid, p]) => ({
        upid,
        round: p.round,
        state: p.state,
        definitionId: p.definition.id,
        ...(p.lastError !== undefined && { lastError: p.lastError }),
        ...(p.startedAt !== undefined && { startedAt: p.startedAt }),
        ...(p.pid !== undefined && { pid: p.pid }),
        ...(p.failedBatches !== undefined && { failedBatches: p.failedBatches }),
      })),
    };
    return { state, reply, changed: false };
  }

  const type = defineActor<EeAgentState>({
    name: EE_AGENT_TYPE,
    placement: 'pinned',
    durability: 'sync',
    // It must keep heartbeating while nobody writes to it.
    idleMs: 0,
    initialState: () => emptyEeAgentState(opts.slots),
    validate: messageValidator(EeAgentMessageSchema),
    onActivate(state, ctx) {
      // Timers are persisted, but the interval may have changed with this node's options.
      ctx.every('heartbeat', opts.heartbeatMs, { beat: true });
      const processes = { ...state.processes };
      for (const [upid, p] of Object.entries(processes)) {
        if (!holdsSlot(p.state) || runner.knows(upid, p.round)) continue;
        processes[upid] = p.state === 'TERMINATING' ? { ...p, state: 'TERMINATED' } : { ...p, state: 'FAILED', lastError: WORKER_RESTARTED };
      }
      const next = { ...state, slots: opts.slots, processes };
      beat(next, ctx);
      return next;
    },
    async handle(state, message, ctx) {
      let changed = false;
      const next = await roleTurn(state, ctx, () => {
        const r = turn(state, parseEeAgentMessage(message), ctx);
        changed = r.changed;
        return r;
      });
      if (changed) beat(next, ctx);
      return next;
    },
  });

  return Object.assign(type, { runner, close: () => runner.close() });
}
