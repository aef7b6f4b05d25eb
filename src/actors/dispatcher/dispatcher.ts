/**
 * The process dispatcher's actor (`dispatcher/main`): the shell around the pure DispatcherCore
 * (./core.ts), as EPU management's actors are shells around theirs. Its protocol is ./protocol.ts.
 *
 * The core lives across turns (held on the state object, out of its JSON) and changes its state in
 * place: it throws its refusals before changing anything, so nothing is copied per turn. What the
 * turn changed is written as actor records, the rest as the (small) state:
 * - each process is the record `p:<upid>`, each agent `a:<agent id>`, written in the turn that changed
 *   it (the core's `takeChanges`); upids are listed, in the order they were scheduled, in the records
 *   `pi:<k>` (INDEX_CHUNK upids each; processes are never deleted), agent ids, in the order the
 *   agents registered, in the records `ai:<k>` (AGENT_CHUNK ids each) but for the last partial
 *   chunk, which is in the state: the state is written whole on every commit, so it holds a bounded
 *   part of the list, and a chunk record is written only when its ids changed;
 * - the state holds the definitions, the queue, the needs, the evacuated agents, the boot flag and
 *   the capacity views: nothing that grows with the processes but the queue;
 * - on activation the core is rebuilt from the state and the records. A state from before the
 *   records (processes and agents inside it) is moved into records then.
 * A turn that throws anything but a refusal crashes the actor, which restarts from what was last
 * committed (state and records), rebuilding the core: a bug's partial change may be in what the
 * turns before it in the same commit wrote, as with any in-place state.
 *
 * Each turn applies the message to the core and carries out the core's effects:
 * - launch / terminate / cleanup are tells to the worker's agent (`ee-agent/<node id>`) through the
 *   outbox, so they go out once the turn is durable (docs/processes.md has the agent's side);
 * - notify tells subscribers that are actor refs `{process: {upid, state, round}}`; any other
 *   subscriber string is kept on the process but not told (there is no other channel yet);
 * - need reconfigures the EPU domain `pd_<engine type>` (npreserving's `preserve_n`, and the
 *   instances of the workers to retire as its `retirable_nodes`). That ask may take seconds (the
 *   domain checks its deployable types with DTRS), so it runs outside the turn through the node's
 *   router, and its result comes back to the dispatcher as a `capacity` tell. A need no domain took
 *   stays in the state (`capacity` in the status) and is tried again every `capacityRetryMs`. Once a
 *   domain took a need, the dispatcher subscribes to it, and a worker instance the domain reports
 *   TERMINATING, TERMINATED or FAILED has its agents evacuated.
 * - After every turn that changed the state, one timer (`tick`) is armed for the core's next wake
 *   time, unless it is armed for that time already.
 *
 * A refusal (bad input, unknown upid or definition, a conflicting re-schedule) is a reply, and the
 * state stays as it was (./../role-reply.ts).
 */
import { defineActor, type ActorContext, type ActorType } from '../../runtime/actor-type.js';
import { parseRefKey, refKey } from '../../runtime/ref.js';
import { CeiError, NotFoundError, errorMessage } from '../../errors.js';
import { askRole, roleTurn } from '../role-reply.js';
import type { RoleEnv } from '../role-env.js';
import { zodReason } from '../zod-reason.js';
import { domainRef } from '../epum/protocol.js';
import {
  DispatcherCore,
  emptyDispatcherState,
  type AgentHeartbeat,
  type AgentRecord,
  type DispatcherChanges,
  type DispatcherEffect,
  type DispatcherState,
  type ProcessDefinition,
  type ProcessRecord,
} from './core.js';
import { domainOf } from './need.js';
import { DISPATCHER_ROLE_DEFAULTS, type DispatcherRoleOptions } from './options.js';
import {
  AgentHeartbeatSchema,
  DISPATCHER_REF,
  agentRef,
  isWellFormedHeartbeat,
  parseDispatcherMessage,
  validateDispatcherMessage,
  type CapacityResult,
  type CapacityView,
  type DispatcherMessage,
  type DispatcherReplies,
  type DispatcherStatus,
  type ProcessNotice,
  type TimerRecord,
} from './protocol.js';
import { parseConstraints } from './constraints.js';

/** The core's state as the actor stores it: its processes and agents are records (module comment). */
export interface StoredCoreState extends Omit<DispatcherState, 'processes' | 'agents'> {
  /** Processes scheduled so far; their upids are in the records `pi:<k>`. */
  processCount: number;
  /**
   * The agents, each in the record `a:<agent id>`, in the order they registered: those after the
   * first `agentChunks` x AGENT_CHUNK, which are listed in the records `ai:<k>`.
   */
  agentIds: string[];
  /** Full chunks of agent ids in records (absent: none, as in states from before the chunks). */
  agentChunks?: number;
}

export interface DispatcherActorState {
  /** A `DispatcherState` (processes and agents inside) in a snapshot from before the records. */
  core: StoredCoreState | DispatcherState;
  /** Each engine type's need as its EPU domain stands with it. */
  capacity: Record<string, CapacityView>;
  /** Timed runs of definitions, by name (absent in snapshots from before timers). */
  timers?: Record<string, TimerRecord>;
}

export function emptyDispatcherActorState(): DispatcherActorState {
  const { processes: _p, agents: _a, ...rest } = emptyDispatcherState();
  return { core: { ...rest, processCount: 0, agentIds: [] }, capacity: {} };
}

/** Upids per index record `pi:<k>`. */
export const INDEX_CHUNK = 1_000;

/** Agent ids per record `ai:<k>`. */
export const AGENT_CHUNK = 64;

/** Record names: `p:<upid>`, `a:<agent id>`, `pi:<k>`; `%` and NUL (not allowed in names) escaped. */
export const processRecordName = (upid: string): string => `p:${escapeName(upid)}`;
export const agentRecordName = (agentId: string): string => `a:${escapeName(agentId)}`;
export const indexRecordName = (k: number): string => `pi:${k}`;
export const agentIndexRecordName = (k: number): string => `ai:${k}`;

function escapeName(id: string): string {
  return id.includes('%') || id.includes('\x00') ? id.replace(/%/g, '%25').replace(/\x00/g, '%00') : id;
}

/** The live core, on the state object but out of its JSON (a restored state has none). */
const LIVE: unique symbol = Symbol('dispatcher core');
type HeldState = DispatcherActorState & { [LIVE]?: DispatcherCore };

function isStored(core: StoredCoreState | DispatcherState): core is StoredCoreState {
  return !('processes' in core);
}

/** Instance states after which a worker's agents are gone for good. */
const GONE_INSTANCE_STATES = new Set(['TERMINATING', 'TERMINATED', 'FAILED']);

/**
 * What a turn hands the shell: the state, the reply (null for tells), whether the turn may have
 * changed anything, and the engine types whose need to send its domain now.
 */
type TurnResult = { state: DispatcherActorState; reply: unknown; changed: boolean; kick: string[] };

/** Adds a core call's effects to the turn's and hands the outcome on (a module function: a closure made per turn costs on every message). */
function collect<T extends { effects: DispatcherEffect[] }>(effects: DispatcherEffect[], out: T): T {
  effects.push(...out.effects);
  return out;
}

/** The result of a turn that only read. */
function readOnly(state: DispatcherActorState, value: unknown): TurnResult {
  return { state, reply: value, changed: false, kick: [] };
}

/**
 * The dispatcher actor type for a node. `env` gives it the router (for the domain asks it makes
 * outside its turns) and the logger; `options` over DISPATCHER_ROLE_DEFAULTS.
 */
export function dispatcherType(env: RoleEnv, options: Partial<DispatcherRoleOptions> = {}): ActorType<DispatcherActorState> {
  const opts: DispatcherRoleOptions = { ...DISPATCHER_ROLE_DEFAULTS, ...options };
  /** Engine types whose domain reconfigure is under way on this node (memory only: a retry covers a lost one). */
  const inflight = new Set<string>();
  /**
   * The wake time the `tick` timer is armed for, by live core (null: none armed), as far as this
   * incarnation armed it. A core rebuilt (activation, a crash) has none, so its first turn arms again.
   */
  const armed = new WeakMap<DispatcherCore, number | null>();
  /**
   * Nodes with agents, as of the last turn on this node (empty where the dispatcher is not hosted),
   * and those already reported gone: a worker the cluster declares down is evacuated at once rather
   * than after heartbeatMissingMs of silence.
   */
  let live: DispatcherCore | undefined;
  const hasAgentOn = (nodeId: string): boolean => live !== undefined && Object.values(live.state.agents).some((a) => a.nodeId === nodeId);
  const reportedGone = new Set<string>();
  env.watchMembers?.((members) => {
    for (const m of members) {
      const gone = m.status === 'down' || m.status === 'left';
      if (!gone) {
        reportedGone.delete(m.id);
        continue;
      }
      if (reportedGone.has(m.id) || !hasAgentOn(m.id)) continue;
      reportedGone.add(m.id);
      env
        .service()
        .tell(DISPATCHER_REF, { evacuate: { nodeId: m.id } })
        .catch((err: unknown) => env.log.warn({ node: m.id, err: errorMessage(err) }, 'dispatcher: could not evacuate a worker that went down'));
    }
  });

  /**
   * Tells the domain of `engineType` to keep `view.wanted` workers, subscribing to it the first time
   * it answers. Runs outside any turn; never throws: the outcome is told back as `capacity`.
   */
  async function applyCapacity(engineType: string, view: CapacityView, retireInstances: string[]): Promise<void> {
    const service = env.service();
    const ref = domainRef(domainOf(engineType));
    let result: CapacityResult;
    try {
      await askRole(service, ref, { op: 'reconfigure', patch: { engine_conf: { preserve_n: view.wanted, retirable_nodes: retireInstances } } }, opts.askTimeoutMs);
      if (!view.subscribed) await askRole(service, ref, { op: 'subscribe', subscriber: refKey(DISPATCHER_REF) }, opts.askTimeoutMs);
      result = { engineType, preserveN: view.wanted, ok: true, subscribed: true };
    } catch (err) {
      result = { engineType, preserveN: view.wanted, ok: false, error: errorMessage(err) };
    } finally {
      inflight.delete(engineType);
    }
    await service.tell(DISPATCHER_REF, { capacity: result }).catch((err: unknown) => {
      env.log.warn({ engineType, err: errorMessage(err) }, 'dispatcher: could not record the outcome of a capacity change');
    });
  }

  /**
   * Starts the domain reconfigure of the needs of `engineTypes` no domain took yet, one at a time per
   * engine type. When to try (a fresh need, a stale result, the retry timer) is the turn's call, so
   * that a missing domain is not asked on every heartbeat.
   */
  function kickCapacity(state: DispatcherActorState, core: DispatcherCore, engineTypes: readonly string[]): void {
    for (const engineType of engineTypes) {
      const view = state.capacity[engineType];
      if (!view || view.applied || inflight.has(engineType)) continue;
      inflight.add(engineType);
      // The domain's retirable_nodes are instance ids; a worker that did not report its instance id
      // (not launched by the provisioner) cannot be named and the domain picks the newest instead.
      const retireInstances = view.retire.flatMap((nodeId) =>
        Object.values(core.state.agents)
          .filter((a) => a.nodeId === nodeId && typeof a.properties.instance_id === 'string')
          .map((a) => a.properties.instance_id as string),
      );
      const snapshot = structuredClone(view);
      // After the turn: the ask must not hold the dispatcher's turn.
      queueMicrotask(() => void applyCapacity(engineType, snapshot, [...new Set(retireInstances)]));
    }
  }

  /** Carries out the core's effects in the turn (through the outbox) and records new needs. */
  function carryOut(effects: DispatcherEffect[], state: DispatcherActorState, ctx: ActorContext): void {
    for (const e of effects) {
      switch (e.type) {
        case 'launch':
          ctx.tell(agentRef(e.nodeId), { launch: { upid: e.upid, round: e.round, definition: e.definition, configuration: e.configuration } });
          break;
        case 'terminate':
          ctx.tell(agentRef(e.nodeId), { terminate: { upid: e.upid, round: e.round } });
          break;
        case 'cleanup':
          ctx.tell(agentRef(e.nodeId), { cleanup: { upid: e.upid, round: e.round } });
          break;
        case 'notify': {
          let to;
          try {
            to = parseRefKey(e.subscriber);
          } catch {
            ctx.log.debug({ upid: e.upid, subscriber: e.subscriber }, 'dispatcher: subscriber is not an actor ref; not told');
            break;
          }
          ctx.tell(to, { process: { upid: e.upid, state: e.state, round: e.round } } satisfies ProcessNotice);
          break;
        }
        case 'need': {
          const prev = state.capacity[e.engineType];
          state.capacity[e.engineType] = {
            wanted: e.preserveN,
            retire: [...e.retire],
            applied: false,
            subscribed: prev?.subscribed ?? false,
            ...(prev?.lastError !== undefined ? { lastError: prev.lastError } : {}),
          };
          break;
        }
      }
    }
  }

  /** Agents of a worker instance (by the instance id they report) or of a node. */
  function agentsOf(core: DispatcherState, where: { nodeId?: string; instanceId?: string }): string[] {
    return Object.values(core.agents)
      .filter((a) => (where.nodeId !== undefined && a.nodeId === where.nodeId) || (where.instanceId !== undefined && a.properties.instance_id === where.instanceId))
      .map((a) => a.agentId);
  }

  function statusOf(state: DispatcherActorState, core: DispatcherCore): DispatcherStatus {
    return {
      booting: core.state.booting,
      agents: Object.values(core.state.agents),
      queue: core.state.queue,
      capacity: state.capacity,
    };
  }

  /**
   * The live core of `state`: the one held on it, or one rebuilt from the state and the records (on
   * activation and after a restart), moving an old snapshot's processes and agents into records.
   */
  function coreOf(state: DispatcherActorState, ctx: ActorContext): DispatcherCore {
    const held = state as HeldState;
    const kept = held[LIVE];
    if (kept) return kept;
    const stored = state.core;
    let core: DispatcherCore;
    if (isStored(stored)) {
      const processes: Record<string, ProcessRecord> = {};
      for (let k = 0; k * INDEX_CHUNK < stored.processCount; k++) {
        for (const upid of (ctx.record(indexRecordName(k)) as string[] | undefined) ?? []) {
          const p = ctx.record(processRecordName(upid));
          if (p !== undefined) processes[upid] = structuredClone(p as ProcessRecord);
        }
      }
      const agents: Record<string, AgentRecord> = {};
      const agentIds: string[] = [];
      for (let k = 0; k < (stored.agentChunks ?? 0); k++) agentIds.push(...((ctx.record(agentIndexRecordName(k)) as string[] | undefined) ?? []));
      agentIds.push(...stored.agentIds);
      for (const id of agentIds) {
        const a = ctx.record(agentRecordName(id));
        if (a !== undefined) agents[id] = structuredClone(a as AgentRecord);
      }
      const { processCount: _n, agentIds: _ids, agentChunks: _c, ...rest } = structuredClone(stored);
      core = new DispatcherCore(opts, { ...rest, processes, agents });
    } else {
      // A snapshot from before the records: everything it holds is written as records now.
      const old = stored;
      core = new DispatcherCore(opts, old);
      state.core = { ...emptyDispatcherActorState().core, agentIds: [] };
      const upids = Object.keys(old.processes);
      const ids = Object.keys(old.agents);
      persist(state, core, ctx, { processes: upids, created: upids, agents: ids, agentSetChanged: true });
      ctx.log.info({ processes: upids.length, agents: ids.length }, 'dispatcher: moved processes and agents from the state into records');
    }
    Object.defineProperty(held, LIVE, { value: core, enumerable: false, configurable: true, writable: true });
    live = core;
    return core;
  }

  /**
   * Writes what the core changed (its own report unless `changes` is given) as records, and the rest
   * of its state into `state.core`.
   */
  function persist(state: DispatcherActorState, core: DispatcherCore, ctx: ActorContext, changes: DispatcherChanges = core.takeChanges()): void {
    const s = core.state;
    const before = state.core as StoredCoreState;
    for (const upid of changes.processes) {
      const p = s.processes[upid];
      if (p) ctx.putRecord(processRecordName(upid), p);
    }
    let count = before.processCount;
    if (changes.created.length > 0) {
      let k = Math.floor(count / INDEX_CHUNK);
      let chunk = [...((ctx.record(indexRecordName(k)) as string[] | undefined) ?? [])];
      for (const upid of changes.created) {
        if (chunk.length >= INDEX_CHUNK) {
          ctx.putRecord(indexRecordName(k), chunk);
          k += 1;
          chunk = [];
        }
        chunk.push(upid);
        count += 1;
      }
      ctx.putRecord(indexRecordName(k), chunk);
    }
    for (const id of changes.agents) {
      const a = s.agents[id];
      if (a) ctx.putRecord(agentRecordName(id), a);
      else ctx.deleteRecord(agentRecordName(id));
    }
    let agentIds = before.agentIds;
    let agentChunks = before.agentChunks ?? 0;
    if (changes.agentSetChanged) {
      const ids = Object.keys(s.agents);
      const full = Math.floor(ids.length / AGENT_CHUNK);
      for (let k = 0; k < full; k++) {
        const chunk = ids.slice(k * AGENT_CHUNK, (k + 1) * AGENT_CHUNK);
        const was = k < agentChunks ? (ctx.record(agentIndexRecordName(k)) as string[] | undefined) : undefined;
        if (!was || was.length !== chunk.length || was.some((id, i) => id !== chunk[i])) ctx.putRecord(agentIndexRecordName(k), chunk);
      }
      for (let k = full; k < agentChunks; k++) ctx.deleteRecord(agentIndexRecordName(k));
      agentIds = ids.slice(full * AGENT_CHUNK);
      agentChunks = full;
    }
    state.core = {
      definitions: s.definitions,
      queue: s.queue,
      evacuated: s.evacuated,
      needs: s.needs,
      booting: s.booting,
      processCount: count,
      agentIds,
      ...(agentChunks > 0 ? { agentChunks } : {}),
    };
  }

  function turn(state: DispatcherActorState, core: DispatcherCore, msg: DispatcherMessage, ctx: ActorContext): TurnResult {
    const now = ctx.now;
    const effects: DispatcherEffect[] = [];
    let reply: unknown = null;
    let kick: string[] = [];

    if ('op' in msg) {
      // domain.changed: evacuate the agents of worker instances that are going away.
      for (const i of msg.instances) {
        if (typeof i.state !== 'string' || !GONE_INSTANCE_STATES.has(i.state)) continue;
        const where = {
          ...(typeof i.instance_id === 'string' ? { instanceId: i.instance_id } : {}),
          ...(typeof i.node_id === 'string' && i.node_id !== '' ? { nodeId: i.node_id } : {}),
        };
        for (const id of agentsOf(core.state, where)) {
          ctx.log.info({ agent: id, instance: i.instance_id, domain: msg.domain }, 'dispatcher: worker instance going away; evacuating its agent');
          collect(effects, core.evacuate(id, now));
        }
      }
    } else if ('createDefinition' in msg) {
      reply = core.createDefinition(msg.createDefinition as ProcessDefinition) satisfies DispatcherReplies['createDefinition'];
    } else if ('updateDefinition' in msg) {
      reply = core.updateDefinition(msg.updateDefinition as ProcessDefinition) satisfies DispatcherReplies['updateDefinition'];
    } else if ('removeDefinition' in msg) {
      core.removeDefinition(msg.removeDefinition.id);
      reply = { removed: msg.removeDefinition.id } satisfies DispatcherReplies['removeDefinition'];
    } else if ('describeDefinition' in msg) {
      const def = core.describeDefinition(msg.describeDefinition.id);
      if (!def) throw new NotFoundError(`process definition "${msg.describeDefinition.id}" does not exist`);
      return readOnly(state, def satisfies DispatcherReplies['describeDefinition']);
    } else if ('listDefinitions' in msg) {
      return readOnly(state, { definitions: core.listDefinitions() } satisfies DispatcherReplies['listDefinitions']);
    } else if ('schedule' in msg) {
      reply = collect(effects, core.schedule(msg.schedule, now)).process satisfies DispatcherReplies['schedule'];
    } else if ('describe' in msg) {
      const p = core.describe(msg.describe.upid);
      if (!p) throw new NotFoundError(`process "${msg.describe.upid}" does not exist`);
      return readOnly(state, p satisfies DispatcherReplies['describe']);
    } else if ('list' in msg) {
      const filter = msg.list.states !== undefined ? { states: msg.list.states } : {};
      return readOnly(state, { processes: core.list(filter) } satisfies DispatcherReplies['list']);
    } else if ('terminate' in msg) {
      reply = collect(effects, core.terminate(msg.terminate.upid, now)).process satisfies DispatcherReplies['terminate'];
    } else if ('restart' in msg) {
      reply = collect(effects, core.restart(msg.restart.upid, now)).process satisfies DispatcherReplies['restart'];
    } else if ('evacuate' in msg) {
      const ids = agentsOf(core.state, msg.evacuate);
      for (const id of ids) collect(effects, core.evacuate(id, now));
      reply = { agents: ids } satisfies DispatcherReplies['evacuate'];
    } else if ('boot' in msg) {
      collect(effects, core.setBooting(msg.boot.booting, now));
      // After the flag: while booting, recovered processes are held (UNSCHEDULED_PENDING) until boot ends.
      const recovered = msg.boot.recover === true ? collect(effects, core.recover(now)).recovered : [];
      reply = { booting: msg.boot.booting, recovered } satisfies DispatcherReplies['boot'];
    } else if ('status' in msg) {
      return readOnly(state, statusOf(state, core) satisfies DispatcherReplies['status']);
    } else if ('heartbeat' in msg) {
      let beat: AgentHeartbeat;
      if (isWellFormedHeartbeat(msg.heartbeat)) beat = msg.heartbeat;
      else {
        const parsed = AgentHeartbeatSchema.safeParse(msg.heartbeat);
        if (!parsed.success) {
          ctx.log.warn({ sender: ctx.sender, reason: zodReason(parsed.error, 'heartbeat') }, 'dispatcher: malformed heartbeat dropped');
          return readOnly(state, null);
        }
        beat = parsed.data as AgentHeartbeat;
      }
      try {
        collect(effects, core.heartbeat(beat, now));
      } catch (err) {
        if (!(err instanceof CeiError)) throw err;
        ctx.log.warn({ agent: beat.agentId, err: err.message }, 'dispatcher: heartbeat refused');
        return readOnly(state, null);
      }
    } else if ('tick' in msg) {
      // The timer fired: nothing is armed any more.
      armed.set(core, null);
      const out = collect(effects, core.tick(now));
      if (out.missing.length > 0) ctx.log.warn({ agents: out.missing }, 'dispatcher: execution engine agents missing; their processes move on');
    } else if ('capacity' in msg) {
      const r = msg.capacity;
      const view = state.capacity[r.engineType];
      // A result for an older need than the one wanted now is stale: the newer one is (or will be) on its way.
      if (view && view.wanted === r.preserveN) {
        if (r.ok) {
          view.applied = true;
          view.subscribed = view.subscribed || r.subscribed === true;
          delete view.lastError;
        } else {
          if (view.lastError !== r.error) {
            // No such domain is a deployment without elastic capacity for this engine type, not a fault.
            const level = /^no domain /.test(r.error ?? '') ? 'info' : 'warn';
            ctx.log[level]({ engineType: r.engineType, domain: domainOf(r.engineType), wanted: r.preserveN, err: r.error }, 'dispatcher: EPU domain did not take the capacity wanted; will try again');
          }
          if (r.error !== undefined) view.lastError = r.error;
          ctx.after('capacityRetry', opts.capacityRetryMs, { capacityRetry: true });
        }
      } else if (view && !view.applied) {
        kick = [r.engineType];
      }
    } else if ('capacityRetry' in msg) {
      kick = Object.keys(state.capacity);
    } else if ('timer' in msg) {
      const spec = msg.timer;
      if (!core.describeDefinition(spec.definitionId)) throw new NotFoundError(`process definition "${spec.definitionId}" does not exist`);
      if (spec.constraints !== undefined) parseConstraints(spec.constraints);
      const next = spec.at ?? now + spec.every!;
      const timer: TimerRecord = { ...spec, next, runs: 0 };
      (state.timers ??= {})[spec.name] = timer;
      ctx.after(`timer:${spec.name}`, Math.max(0, next - now), { fire: { name: spec.name } });
      reply = timer satisfies DispatcherReplies['timer'];
    } else if ('cancelTimer' in msg) {
      const { name } = msg.cancelTimer;
      if (!state.timers?.[name]) throw new NotFoundError(`no timer "${name}"`);
      delete state.timers[name];
      ctx.cancelTimer(`timer:${name}`);
      reply = { cancelled: name } satisfies DispatcherReplies['cancelTimer'];
    } else if ('listTimers' in msg) {
      return readOnly(state, { timers: Object.values(state.timers ?? {}) } satisfies DispatcherReplies['listTimers']);
    } else if ('fire' in msg) {
      const timer = state.timers?.[msg.fire.name];
      if (!timer) return readOnly(state, null);
      const upid = `${timer.name}-${timer.runs}`;
      try {
        collect(effects, 
          core.schedule(
            {
              upid,
              definitionId: timer.definitionId,
              restartMode: 'NEVER',
              ...(timer.configuration !== undefined ? { configuration: timer.configuration } : {}),
              ...(timer.constraints !== undefined ? { constraints: timer.constraints } : {}),
              ...(timer.executionEngine !== undefined ? { executionEngine: timer.executionEngine } : {}),
            },
            now,
          ),
        );
        delete timer.lastError;
      } catch (err) {
        // The definition went away, say: the run is skipped and the timer says why.
        if (!(err instanceof CeiError)) throw err;
        timer.lastError = `${upid}: ${err.message}`;
        ctx.log.warn({ timer: timer.name, err: err.message }, 'dispatcher: a timed run could not be scheduled');
      }
      timer.runs++;
      if (timer.every !== undefined && (timer.count === undefined || timer.runs < timer.count)) {
        // Runs missed while the dispatcher was down are not made up: the next one is the next due.
        timer.next = Math.max(timer.next + timer.every, now + 1);
        ctx.after(`timer:${timer.name}`, timer.next - now, { fire: { name: timer.name } });
      } else {
        delete state.timers![timer.name];
      }
    }

    const wantedBefore = Object.fromEntries(Object.entries(state.capacity).map(([t, v]) => [t, v.wanted]));
    carryOut(effects, state, ctx);
    for (const [t, v] of Object.entries(state.capacity)) if (!v.applied && wantedBefore[t] !== v.wanted && !kick.includes(t)) kick.push(t);
    return { state, reply, changed: true, kick };
  }

  /**
   * Arms the one `tick` timer for the core's next wake time (after a turn that changed the state).
   * Most turns leave the wake time as it was, and arming the same time again would write the timer
   * and set it again in the runtime for nothing, on every turn.
   */
  function armTick(core: DispatcherCore, ctx: ActorContext): void {
    const wake = core.nextWakeAt(ctx.now) ?? null;
    if (armed.has(core) && armed.get(core) === wake) return;
    if (wake !== null) ctx.after('tick', Math.max(0, wake - ctx.now), { tick: true });
    else ctx.cancelTimer('tick');
    armed.set(core, wake);
  }

  return defineActor<DispatcherActorState>({
    name: DISPATCHER_REF.type,
    placement: 'control',
    durability: 'sync',
    // Its timers judge agents' silence; it must not be unloaded between them.
    idleMs: 0,
    initialState: () => emptyDispatcherActorState(),
    validate: validateDispatcherMessage,
    onActivate(state, ctx) {
      const core = coreOf(state, ctx);
      // A reconfigure under way when the node stopped never reports back: start again what is not applied.
      kickCapacity(state, core, Object.keys(state.capacity));
      return state;
    },
    async handle(state, message, ctx) {
      const core = coreOf(state, ctx);
      let result: TurnResult | undefined;
      await roleTurn(state, ctx, () => (result = turn(state, core, parseDispatcherMessage(message), ctx)));
      // A refusal changed nothing (the core throws before it changes anything): nothing to write.
      persist(state, core, ctx);
      if (result?.changed) armTick(core, ctx);
      kickCapacity(state, core, result?.kick ?? []);
      return state;
    },
  });
}
