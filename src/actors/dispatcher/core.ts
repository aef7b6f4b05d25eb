/**
 * The process dispatcher's pure core: process definitions, processes and their rounds, the queue,
 * the execution engine agents and their slots, matching, engine health and elastic capacity.
 *
 * Contract with the actor around it:
 *   - the whole state is one plain JSON value (`core.state`); the actor persists it after each turn
 *     and rebuilds the core from it with `new DispatcherCore(options, state)`;
 *   - every method that changes anything takes `now` (ms) and returns the effects to carry out
 *     (launch / terminate / cleanup on agents, notify subscribers, set an EPU domain's need); the core
 *     itself does no I/O and reads no clock;
 *   - a refused request throws a CeiError (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS) before
 *     anything changed, so the actor may keep the state as it is;
 *   - after each call the actor should arm one timer for `nextWakeAt(now)` and call `tick` then:
 *     that is when a throttled process may start or an agent's silence changes its health.
 *
 * Every change that may free or add capacity ends with a matching pass over the queue (in the order
 * processes were queued) and a fresh computation of each engine type's need.
 *
 * Cost: a call costs what it changes, not what the core holds. The core keeps, beside the state and
 * derived from it (rebuilt by the constructor), which agents hold each upid, each upid's part in the
 * need counts, the counts by engine type (busy workers too), and the slot table of the last matching
 * pass, from which nodes leave as they fill. Matching
 * looks only at the queue entries added since the last pass, unless capacity may have grown since
 * (an agent came, changed, recovered or freed a slot; a retiree was kept; a throttled start fell
 * due): the entries judged before cannot fit in less room than they failed in. A need is planned
 * again only when its inputs (queued and running counts, the agents, the last need) changed. So a
 * heartbeat that changes nothing but the agent's last-heard time does no matching and no planning.
 * The outcome is exactly that of a full pass and a full computation on every call.
 *
 * Engine types: a process with `executionEngine` goes only to agents of that type; one without may go
 * to any agent, and while queued counts toward the need of `defaultEngineType` (once placed, toward
 * its agent's type).
 *
 * Agents: one per worker node. The first heartbeat registers an agent (the original waited for the
 * EPU domain's word on the node first; here the domain's `evacuate` is the only node news needed).
 */
import { CeiError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { parseConstraints, type Constraints } from './constraints.js';
import { ENGINE_HEALTH_DEFAULTS, nextHealthChangeAt, sweep, type EngineHealthOptions } from './engine-health.js';
import { occupy, pickPlacement, type SlotNode, type SlotTable } from './matching.js';
import { CAPACITY_DEFAULTS, domainOf, planCountedNeed, type EngineCapacity, type WorkerView } from './need.js';
import {
  DEFAULT_QUEUEING_MODE,
  DEFAULT_RESTART_MODE,
  QUEUEING_MODES,
  RESTART_MODES,
  isAgentState,
  isEndReport,
  isFinal,
  isQueued,
  queueVerdict,
  shouldRestart,
  type AgentProcessState,
  type ProcessState,
  type QueueingMode,
  type RestartMode,
} from './states.js';

// --- options ---------------------------------------------------------------------------------------

export interface DispatcherOptions extends EngineHealthOptions {
  /** Least time between two launches of the same process, against restart storms. */
  minStartIntervalMs: number;
  /** The engine type a process without `executionEngine` counts toward when it is queued. */
  defaultEngineType: string;
  /** Capacity per engine type; missing fields come from `engineDefaults`. */
  engines: Record<string, Partial<EngineCapacity>>;
  /**
   * Defaults for every engine type. When `slotsPerWorker` is not set for a type, the largest slot
   * count its agents report is used, and this value only before any has reported.
   */
  engineDefaults: EngineCapacity;
  /** How long the id of an evacuated agent is remembered, so its late heartbeats are ignored. */
  forgetEvacuatedMs: number;
}

export const DISPATCHER_DEFAULTS: DispatcherOptions = {
  ...ENGINE_HEALTH_DEFAULTS,
  minStartIntervalMs: 2_000,
  defaultEngineType: 'default',
  engines: {},
  engineDefaults: CAPACITY_DEFAULTS,
  forgetEvacuatedMs: 10 * 60_000,
};

/** Short intervals for tests. */
export const DISPATCHER_TEST_PRESET: DispatcherOptions = {
  ...DISPATCHER_DEFAULTS,
  heartbeatWarningMs: 300,
  heartbeatMissingMs: 600,
  minStartIntervalMs: 200,
  forgetEvacuatedMs: 60_000,
};

// --- state -----------------------------------------------------------------------------------------

export type JsonObject = Record<string, unknown>;

export interface ProcessDefinition {
  id: string;
  /** 'exec', 'js', or a built-in transform name ('window-average' ...). */
  type: string;
  /** What to run: {argv, env, cwd} for exec, {module} for js. */
  executable: JsonObject;
  /** Default configuration, under the process's own. */
  config: JsonObject;
  description?: string;
}

export interface ProcessRecord {
  upid: string;
  name?: string;
  definitionId: string;
  /** The definition as it was when the process was scheduled; later updates do not change it. */
  definition: ProcessDefinition;
  configuration: JsonObject;
  constraints: Constraints;
  queueingMode: QueueingMode;
  restartMode: RestartMode;
  executionEngine?: string;
  nodeExclusive?: string;
  subscribers: string[];
  state: ProcessState;
  round: number;
  /** Times it reached RUNNING (decides first start vs restart for queueing). */
  starts: number;
  /** Where the current round is placed; only while ASSIGNED, PENDING, RUNNING or TERMINATING. */
  assigned?: { agentId: string; nodeId: string };
  hostname?: string;
  createdAt: number;
  stateChangedAt: number;
  /** When it was last launched (throttles the next launch). */
  lastLaunchAt?: number;
  lastError?: string;
}

export interface AgentRecord {
  agentId: string;
  nodeId: string;
  engineType: string;
  slots: number;
  /** As reported, plus `engine_type`. */
  properties: JsonObject;
  firstHeardAt: number;
  lastHeardAt: number;
  /** The `at` of the last heartbeat applied; an older one arriving late is dropped. */
  lastBeatAt: number;
  health: 'OK' | 'WARNING';
  /** Named for retirement in the last need; takes no new work. */
  retiring: boolean;
  /** Process rounds holding its slots (an old round stays until the agent reports it gone). */
  assigned: Array<{ upid: string; round: number }>;
}

export interface DispatcherState {
  definitions: Record<string, ProcessDefinition>;
  processes: Record<string, ProcessRecord>;
  /** Process rounds waiting for matching, in the order they were queued. */
  queue: Array<{ upid: string; round: number }>;
  agents: Record<string, AgentRecord>;
  /** Agent id -> when it was evacuated. */
  evacuated: Record<string, number>;
  /** The need last told each engine type's domain. */
  needs: Record<string, { preserveN: number; retire: string[] }>;
  booting: boolean;
}

export function emptyDispatcherState(): DispatcherState {
  return { definitions: {}, processes: {}, queue: [], agents: {}, evacuated: {}, needs: {}, booting: false };
}

// --- messages in -----------------------------------------------------------------------------------

export interface ScheduleRequest {
  upid: string;
  definitionId: string;
  configuration?: JsonObject;
  constraints?: unknown;
  queueingMode?: QueueingMode;
  restartMode?: RestartMode;
  executionEngine?: string;
  nodeExclusive?: string;
  subscribers?: string[];
  name?: string;
}

export interface AgentProcessReport {
  upid: string;
  round: number;
  state: AgentProcessState;
  lastError?: string;
}

export interface AgentHeartbeat {
  agentId: string;
  nodeId: string;
  engineType: string;
  /** Total slots of the agent. */
  slots: number;
  processes: AgentProcessReport[];
  properties?: JsonObject;
  /** When the agent sent it (its clock); orders heartbeats of one agent. */
  at: number;
}

// --- effects out -----------------------------------------------------------------------------------

export type DispatcherEffect =
  | { type: 'launch'; agentId: string; nodeId: string; upid: string; round: number; definition: ProcessDefinition; configuration: JsonObject }
  | { type: 'terminate'; agentId: string; nodeId: string; upid: string; round: number }
  /** The agent may forget a round that ended (it stops reporting it). */
  | { type: 'cleanup'; agentId: string; nodeId: string; upid: string; round: number }
  | { type: 'notify'; subscriber: string; upid: string; state: ProcessState; round: number }
  /** Reconfigure the domain: keep preserveN workers, retiring the named nodes first. */
  | { type: 'need'; engineType: string; domain: string; preserveN: number; retire: string[] };

export type Outcome<T extends object = object> = T & { effects: DispatcherEffect[] };

// --- the core --------------------------------------------------------------------------------------

/** What changed in the state since the last `takeChanges`: what the actor writes in its turn. */
export interface DispatcherChanges {
  /** Processes created or changed, by upid. */
  processes: string[];
  /** Of those, the ones created, in the order they were. */
  created: string[];
  /** Agents registered, changed or forgotten (no longer in `state.agents`), by agent id. */
  agents: string[];
  /** An agent was registered or forgotten. */
  agentSetChanged: boolean;
}

/** Counts of the work the core did (for tests and benchmarks). */
export interface DispatcherPasses {
  /** Matching passes that looked at one queue entry or more. */
  matching: number;
  /** Need plans computed (one per engine type whose inputs changed). */
  needs: number;
}

/** One upid's part in the need counts: the engine types it counts toward. */
interface NeedPart {
  /** Not final: the type shows in the needs. */
  live?: string;
  /** Queued (or held for boot) and held by no agent of its type. */
  waiting?: string;
  /** Types of the agents holding one of its rounds. */
  held: string[];
}

/**
 * Methods are not re-entrant and not concurrent: the actor calls one at a time. The state object is
 * changed in place; `state` hands out that same object (copy it before keeping it elsewhere). Change
 * the state only through the core: what it derives from the state is not rebuilt on later calls.
 * A refusal (CeiError) is thrown before anything changed, by every method.
 */
export class DispatcherCore {
  readonly options: DispatcherOptions;
  private readonly s: DispatcherState;
  private fx: DispatcherEffect[] = [];
  readonly passes: DispatcherPasses = { matching: 0, needs: 0 };

  // --- derived from the state (see the module comment) ---
  /** Upid -> the agents whose `assigned` holds a round of it, one entry per round held. */
  private readonly holders = new Map<string, string[]>();
  /** Agents by engine type. */
  private readonly agentTypes = new Map<string, number>();
  /** Each upid's part in the counts below, and the counts by engine type. */
  private readonly parts = new Map<string, NeedPart>();
  private readonly liveCount = new Map<string, number>();
  private readonly waitingCount = new Map<string, number>();
  private readonly holdingCount = new Map<string, number>();
  /** Upids whose part must be counted again before the needs are planned. */
  private readonly recount = new Set<string>();
  /** Moves on any change to the agents that the need plans read (set, nodes, slots, busy). */
  private agentsEpoch = 0;
  /** Moves on a change to the agents that the fleets hold (set, nodes, engine types, slots); not on busy. */
  private fleetEpoch = 0;
  /** Engine type -> the inputs of its last plan. */
  private readonly planned = new Map<string, string>();
  /** Engine type -> its agents and capacity as of `fleetEpoch` (the plan's slow inputs). */
  private readonly fleets = new Map<string, { epoch: number; agents: AgentRecord[]; capacity: EngineCapacity }>();
  /**
   * The busy workers the plans count, kept as agents change so that a plan does not scan the fleet:
   * agent id -> the worker (engine type and node) its held rounds keep busy, and engine type -> node
   * -> the busy agents of that type there (the type's busy workers are that map's size).
   */
  private readonly busyAt = new Map<string, { type: string; nodeId: string }>();
  private readonly busyAgents = new Map<string, Map<string, number>>();
  /** Agents named for retirement (`retiring`), so a plan that names none looks only at them. */
  private readonly retiringAgents = new Set<string>();
  /** `Object.values(state.agents)` until the set of agents changes (that call is slow on a large set). */
  private agentList: AgentRecord[] | undefined;
  /** The slot table as the last matching pass left it; undefined once an agent changed. */
  private table: SlotTable | undefined;
  /** Capacity may have grown since the last full pass: the next pass looks at the whole queue. */
  private capacityGrew = true;
  /** Queue entries before this index were judged (kept waiting or throttled) by the last pass. */
  private judged = 0;
  /** The earliest due time of a throttled entry the last passes kept. */
  private throttledDue: number | undefined;
  private readonly queued = new Set<string>();
  /** Queued upids the passes kept because their start is throttled (superset of those not yet due). */
  private readonly throttled = new Set<string>();
  /** Agents by last-heard time, ascending: the health wake-up is a search, not a scan. */
  private heard: Array<{ at: number; agentId: string }> = [];
  private changes = { processes: new Set<string>(), created: [] as string[], agents: new Set<string>(), agentSetChanged: false };

  constructor(options: Partial<DispatcherOptions> = {}, state: DispatcherState = emptyDispatcherState()) {
    this.options = { ...DISPATCHER_DEFAULTS, ...options };
    this.s = state;
    for (const a of Object.values(state.agents)) {
      this.hear(a.agentId, a.lastHeardAt);
      this.countAgentType(a.engineType, 1);
      for (const e of a.assigned) this.hold(e.upid, a.agentId);
      this.rebusy(a.agentId);
      if (a.retiring) this.retiringAgents.add(a.agentId);
    }
    for (const upid of Object.keys(state.processes)) this.recount.add(upid);
    for (const e of state.queue) this.queued.add(e.upid);
  }

  /** What changed since the last call (or since the core was made), and forgets it. */
  takeChanges(): DispatcherChanges {
    const c = this.changes;
    this.changes = { processes: new Set(), created: [], agents: new Set(), agentSetChanged: false };
    return { processes: [...c.processes], created: c.created, agents: [...c.agents], agentSetChanged: c.agentSetChanged };
  }

  get state(): DispatcherState {
    return this.s;
  }

  // --- definitions ---------------------------------------------------------------------------------

  createDefinition(raw: ProcessDefinition): ProcessDefinition {
    const def = checkDefinition(raw);
    if (this.s.definitions[def.id]) throw new CeiError('ALREADY_EXISTS', `process definition "${def.id}" exists; update it to change it`);
    this.s.definitions[def.id] = def;
    return clone(def);
  }

  /** Replaces a definition; processes already scheduled keep the one they were scheduled with. */
  updateDefinition(raw: ProcessDefinition): ProcessDefinition {
    const def = checkDefinition(raw);
    if (!this.s.definitions[def.id]) throw new NotFoundError(`process definition "${def.id}" does not exist`);
    this.s.definitions[def.id] = def;
    return clone(def);
  }

  removeDefinition(id: string): void {
    if (!this.s.definitions[id]) throw new NotFoundError(`process definition "${id}" does not exist`);
    delete this.s.definitions[id];
  }

  describeDefinition(id: string): ProcessDefinition | undefined {
    const def = this.s.definitions[id];
    return def && clone(def);
  }

  listDefinitions(): ProcessDefinition[] {
    return Object.values(this.s.definitions).map(clone);
  }

  // --- processes -----------------------------------------------------------------------------------

  /**
   * Schedules a process. Repeating a request for an existing upid with the same parameters (the
   * name aside) returns the process as it is, whatever its state: a retried call never runs it
   * twice. To run a finished process again, `restart` it.
   */
  schedule(req: ScheduleRequest, now: number): Outcome<{ process: ProcessRecord }> {
    const params = this.checkSchedule(req);
    const existing = this.s.processes[req.upid];
    if (existing) {
      const differing = differingField(existing, params);
      if (differing !== undefined) {
        throw new InvalidArgumentError(`process "${req.upid}" exists (${existing.state}) with a different ${differing}`);
      }
      return this.out({ process: clone(existing) });
    }
    const def = this.s.definitions[req.definitionId]!;
    const p: ProcessRecord = {
      upid: req.upid,
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...params,
      definition: clone(def),
      state: 'REQUESTED',
      round: 0,
      starts: 0,
      createdAt: now,
      stateChangedAt: now,
    };
    this.s.processes[p.upid] = p;
    this.changes.created.push(p.upid);
    this.touch(p);
    // Agents may still report a round of this upid (from a state lost since): its tag counts there.
    if (p.nodeExclusive !== undefined && this.holders.has(p.upid)) this.capacityChanged();
    this.notify(p);
    this.enqueue(p);
    this.settle(now);
    return this.out({ process: clone(p) });
  }

  /**
   * Terminates a process: a placed one goes TERMINATING and its agent is told (again, if it already
   * was: the call may be retried); one not placed is TERMINATED at once. A final one is left alone.
   */
  terminate(upid: string, now: number): Outcome<{ process: ProcessRecord }> {
    const p = this.mustGet(upid);
    if (isFinal(p.state) || p.state === 'UNSCHEDULED') return this.out({ process: clone(p) });
    if (p.assigned) {
      this.fx.push({ type: 'terminate', ...p.assigned, upid, round: p.round });
      this.setState(p, 'TERMINATING', now);
    } else {
      this.setState(p, 'TERMINATED', now);
      this.dequeue(p.upid);
    }
    this.settle(now);
    return this.out({ process: clone(p) });
  }

  /**
   * Restarts a process in a new round. A placed one is told to stop (its old round keeps its slot
   * until the agent reports it gone) and is queued again; a final one is queued again; one already
   * waiting to be placed is left as it is.
   */
  restart(upid: string, now: number): Outcome<{ process: ProcessRecord }> {
    const p = this.mustGet(upid);
    if (isQueued(p.state) || p.state === 'UNSCHEDULED_PENDING') return this.out({ process: clone(p) });
    if (p.assigned) this.fx.push({ type: 'terminate', ...p.assigned, upid, round: p.round });
    this.nextRound(p, 'REQUESTED', now);
    this.settle(now);
    return this.out({ process: clone(p) });
  }

  describe(upid: string): ProcessRecord | undefined {
    const p = this.s.processes[upid];
    return p && clone(p);
  }

  list(filter: { states?: readonly ProcessState[] } = {}): ProcessRecord[] {
    const all = Object.values(this.s.processes);
    const picked = filter.states && filter.states.length > 0 ? all.filter((p) => filter.states!.includes(p.state)) : all;
    return picked.map(clone);
  }

  // --- agents --------------------------------------------------------------------------------------

  /**
   * Applies an agent's heartbeat: registers a new agent, moves its processes along (PENDING ->
   * RUNNING, RUNNING -> EXITED/FAILED/next round, TERMINATING -> TERMINATED) and frees the slots of
   * rounds that ended. Reports of an older round than the process's are not applied: a round that
   * still runs is told to terminate, one that ended to clean up.
   */
  heartbeat(beat: AgentHeartbeat, now: number): Outcome {
    checkHeartbeat(beat);
    const evacuatedAt = this.s.evacuated[beat.agentId];
    if (evacuatedAt !== undefined) {
      // Late beats of the evacuated worker are ignored; a worker started again since (the same node
      // id on its data directory) is a new agent.
      const startedAt = beat.properties?.started_at;
      if (typeof startedAt !== 'number' || startedAt <= evacuatedAt) return this.out({});
      delete this.s.evacuated[beat.agentId];
    }
    const known = this.s.agents[beat.agentId];
    if (known && beat.at < known.lastBeatAt) return this.out({});
    const properties: JsonObject = { ...(beat.properties ?? {}), engine_type: beat.engineType };
    let agent: AgentRecord;
    if (!known) {
      agent = {
        agentId: beat.agentId,
        nodeId: beat.nodeId,
        engineType: beat.engineType,
        slots: beat.slots,
        properties,
        firstHeardAt: now,
        lastHeardAt: now,
        lastBeatAt: beat.at,
        health: 'OK',
        retiring: false,
        assigned: [],
      };
      this.s.agents[agent.agentId] = agent;
      // Object.values lists an id that looks like an array index before the others, not last.
      if (this.agentList && !/^(0|[1-9][0-9]*)$/.test(agent.agentId)) this.agentList.push(agent);
      else this.agentList = undefined;
      this.countAgentType(agent.engineType, 1);
      this.changes.agentSetChanged = true;
      this.agentsEpoch++;
      this.fleetEpoch++;
      this.capacityChanged();
    } else {
      agent = known;
      if (agent.nodeId !== beat.nodeId || agent.engineType !== beat.engineType || agent.slots !== beat.slots) {
        this.agentsEpoch++;
        this.fleetEpoch++;
        this.capacityChanged();
      }
      if (agent.engineType !== beat.engineType) {
        this.countAgentType(agent.engineType, -1);
        this.countAgentType(beat.engineType, 1);
        for (const e of agent.assigned) this.recount.add(e.upid);
      }
      if (agent.health !== 'OK' || !sameJson(agent.properties, properties)) this.capacityChanged();
      this.unhear(agent.agentId, agent.lastHeardAt);
      Object.assign(agent, { nodeId: beat.nodeId, engineType: beat.engineType, slots: beat.slots, properties, lastHeardAt: now, lastBeatAt: beat.at, health: 'OK' });
      this.rebusy(agent.agentId);
    }
    this.hear(agent.agentId, now);
    this.changes.agents.add(agent.agentId);
    const at = { agentId: agent.agentId, nodeId: agent.nodeId };
    const stillThere: Array<{ upid: string; round: number }> = [];
    for (const r of beat.processes) {
      const p = this.s.processes[r.upid];
      const ended = isEndReport(r.state);
      if (!ended) stillThere.push({ upid: r.upid, round: r.round });
      // Unknown (lost with an older state?), older round, or not ours any more: not applied.
      if (!p || r.round !== p.round || p.assigned?.agentId !== agent.agentId) {
        if (ended) this.fx.push({ type: 'cleanup', ...at, upid: r.upid, round: r.round });
        else if (p && r.round <= p.round) this.fx.push({ type: 'terminate', ...at, upid: r.upid, round: r.round });
        continue;
      }
      if (r.lastError !== undefined && r.lastError !== p.lastError) {
        p.lastError = r.lastError;
        this.touch(p);
      }
      this.applyReport(p, r.state, now);
      if (ended) this.fx.push({ type: 'cleanup', ...at, upid: r.upid, round: r.round });
    }
    // A slot stays taken while the agent still runs the round, or while the round is ours and live
    // there (a launch the agent has not reported yet).
    const kept = agent.assigned.filter((e) => {
      const p = this.s.processes[e.upid];
      return stillThere.some((x) => x.upid === e.upid && x.round === e.round) || (p !== undefined && p.round === e.round && p.assigned?.agentId === agent.agentId);
    });
    for (const x of stillThere) if (!kept.some((e) => e.upid === x.upid && e.round === x.round)) kept.push(x);
    this.setAssigned(agent, kept);
    this.settle(now);
    return this.out({});
  }

  /** Judges agent health (WARNING stops new work, MISSING evacuates), then matches what is due. */
  tick(now: number): Outcome<{ missing: string[] }> {
    const verdict = sweep(this.allAgents(), now, this.options);
    for (const id of verdict.warned) {
      this.s.agents[id]!.health = 'WARNING';
      this.changes.agents.add(id);
      this.capacityChanged();
    }
    for (const id of verdict.missing) this.dropAgent(id, now, `execution engine agent ${id} missing: no heartbeat for more than ${this.options.heartbeatMissingMs} ms`);
    for (const [id, at] of Object.entries(this.s.evacuated)) {
      if (now - at > this.options.forgetEvacuatedMs) delete this.s.evacuated[id];
    }
    this.settle(now);
    return this.out({ missing: verdict.missing });
  }

  /**
   * A worker its EPU domain terminated (a node id) or one agent (an agent id): its agents are treated
   * as missing at once and remembered, so late heartbeats from them do not bring them back.
   */
  evacuate(nodeOrAgentId: string, now: number): Outcome<{ agents: string[] }> {
    const ids = this.allAgents()
      .filter((a) => a.agentId === nodeOrAgentId || a.nodeId === nodeOrAgentId)
      .map((a) => a.agentId);
    for (const id of ids) {
      // Its worker is gone: no last-ditch terminate to an agent that cannot get it.
      this.dropAgent(id, now, `execution engine agent ${id} evacuated: its worker was terminated`, false);
      this.s.evacuated[id] = now;
    }
    this.settle(now);
    return this.out({ agents: ids });
  }

  // --- system boot ---------------------------------------------------------------------------------

  /**
   * While booting, recovered restartable processes are held in UNSCHEDULED_PENDING; ending the boot
   * queues them (in the order they were recovered).
   */
  setBooting(booting: boolean, now: number): Outcome {
    this.s.booting = booting;
    if (!booting) {
      const held = Object.values(this.s.processes)
        .filter((p) => p.state === 'UNSCHEDULED_PENDING')
        .sort((a, b) => a.stateChangedAt - b.stateChangedAt || (a.upid < b.upid ? -1 : 1));
      for (const p of held) {
        this.setState(p, 'REQUESTED', now);
        this.enqueue(p);
      }
    }
    this.settle(now);
    return this.out({});
  }

  /**
   * Processes from before a system restart (all live ones when `upids` is undefined): their agents
   * are gone with the old system, so each goes to its next round, held in UNSCHEDULED_PENDING while
   * booting (queued otherwise), or FAILED when its restart mode (or `process.omit_from_system_restart`)
   * says it does not come back.
   */
  recover(now: number, upids?: readonly string[]): Outcome<{ recovered: string[] }> {
    const picked = upids ? upids.map((u) => this.mustGet(u)) : Object.values(this.s.processes);
    const recovered: string[] = [];
    for (const p of picked) {
      if (isFinal(p.state) || p.state === 'UNSCHEDULED' || p.state === 'UNSCHEDULED_PENDING') continue;
      if (p.state === 'TERMINATING') {
        this.release(p);
        this.setState(p, 'TERMINATED', now);
        continue;
      }
      if (shouldRestart(p.restartMode, 'FAILED', { systemRestart: true, configuration: p.configuration })) {
        this.dequeue(p.upid);
        this.nextRound(p, this.s.booting ? 'UNSCHEDULED_PENDING' : 'DIED_REQUESTED', now);
        recovered.push(p.upid);
      } else {
        this.release(p);
        this.dequeue(p.upid);
        p.lastError = 'not restarted after a system restart';
        this.touch(p);
        this.setState(p, 'FAILED', now);
      }
    }
    this.settle(now);
    return this.out({ recovered });
  }

  // --- timers --------------------------------------------------------------------------------------

  /** When `tick` should next run: a throttled start falls due or an agent's silence changes its health. */
  nextWakeAt(now: number): number | undefined {
    let next: number | undefined;
    // Every queued start not due at the last pass is in `throttled` (each call ends with a pass).
    for (const upid of this.throttled) next = earlier(next, this.startDueAt(upid), now);
    // The earliest change is the first bound of the agent heard first after `now - warning - 1`, or
    // the second bound of the one heard first after `now - missing - 1`.
    const { heartbeatWarningMs: warning, heartbeatMissingMs: missing } = this.options;
    for (const bound of [warning, missing]) {
      const first = this.heard[this.firstHeardAfter(now - bound - 1)];
      if (first) next = earlier(next, nextHealthChangeAt(first.at, now, this.options), now);
    }
    return next;
  }

  /** The earliest time the process may be launched again; undefined if it never was. */
  startDueAt(upid: string): number | undefined {
    const last = this.s.processes[upid]?.lastLaunchAt;
    return last === undefined ? undefined : last + this.options.minStartIntervalMs;
  }

  // --- internals -----------------------------------------------------------------------------------

  private mustGet(upid: string): ProcessRecord {
    const p = this.s.processes[upid];
    if (!p) throw new NotFoundError(`process "${upid}" does not exist`);
    return p;
  }

  /** Matches the queue and recomputes needs: after any change that may free, add or want capacity. */
  private settle(now: number): void {
    this.matchmake(now);
    this.updateNeeds();
  }

  /** The process changed: written in this turn, and its part in the needs counted again. */
  private touch(p: ProcessRecord): void {
    this.changes.processes.add(p.upid);
    this.recount.add(p.upid);
  }

  /** An agent changed in a way that may add room: the slot table is stale and the next pass is full. */
  private capacityChanged(): void {
    this.table = undefined;
    this.capacityGrew = true;
  }

  /** The agents, in the state's order; the list is shared: do not change it. */
  private allAgents(): AgentRecord[] {
    return (this.agentList ??= Object.values(this.s.agents));
  }

  /** Counts the agent's worker busy or not as the agent now stands (gone: not). */
  private rebusy(agentId: string): void {
    const a = this.s.agents[agentId];
    const now = a && a.assigned.length > 0 ? { type: a.engineType, nodeId: a.nodeId } : undefined;
    const was = this.busyAt.get(agentId);
    if (was?.type === now?.type && was?.nodeId === now?.nodeId) return;
    if (was) {
      this.busyAt.delete(agentId);
      const nodes = this.busyAgents.get(was.type)!;
      bump(nodes, was.nodeId, -1);
      if (nodes.size === 0) this.busyAgents.delete(was.type);
    }
    if (now) {
      this.busyAt.set(agentId, now);
      let nodes = this.busyAgents.get(now.type);
      if (!nodes) this.busyAgents.set(now.type, (nodes = new Map()));
      bump(nodes, now.nodeId, 1);
    }
  }

  /** Index of the first agent in `heard` heard after `t`. */
  private firstHeardAfter(t: number): number {
    let lo = 0;
    let hi = this.heard.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.heard[mid]!.at > t) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private hear(agentId: string, at: number): void {
    const i = this.firstHeardAfter(at);
    if (i === this.heard.length) this.heard.push({ at, agentId });
    else this.heard.splice(i, 0, { at, agentId });
  }

  private unhear(agentId: string, at: number): void {
    for (let i = this.firstHeardAfter(at) - 1; i >= 0 && this.heard[i]!.at === at; i--) {
      if (this.heard[i]!.agentId === agentId) {
        this.heard.splice(i, 1);
        return;
      }
    }
  }

  private countAgentType(type: string, delta: number): void {
    const n = (this.agentTypes.get(type) ?? 0) + delta;
    if (n > 0) this.agentTypes.set(type, n);
    else this.agentTypes.delete(type);
  }

  private hold(upid: string, agentId: string): void {
    const list = this.holders.get(upid);
    if (list) list.push(agentId);
    else this.holders.set(upid, [agentId]);
    this.recount.add(upid);
  }

  private unhold(upid: string, agentId: string): void {
    const list = this.holders.get(upid);
    const i = list ? list.indexOf(agentId) : -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.holders.delete(upid);
    this.recount.add(upid);
  }

  /** Replaces the rounds an agent holds; a slot or tag freed is room gained. */
  private setAssigned(agent: AgentRecord, next: Array<{ upid: string; round: number }>): void {
    const before = agent.assigned;
    if (before.length === next.length && before.every((e, i) => e.upid === next[i]!.upid && e.round === next[i]!.round)) return;
    for (const e of before) this.unhold(e.upid, agent.agentId);
    for (const e of next) this.hold(e.upid, agent.agentId);
    if ((before.length === 0) !== (next.length === 0)) this.agentsEpoch++;
    agent.assigned = next;
    this.rebusy(agent.agentId);
    this.changes.agents.add(agent.agentId);
    this.capacityChanged();
  }

  /** Hands back the effects collected during the call. */
  private out<T extends object>(value: T): Outcome<T> {
    const effects = this.fx;
    this.fx = [];
    return { ...value, effects };
  }

  private checkSchedule(req: ScheduleRequest): ScheduleParams {
    if (typeof req.upid !== 'string' || req.upid.trim() === '') throw new InvalidArgumentError('upid must be a non-empty string');
    if (typeof req.definitionId !== 'string' || req.definitionId === '') throw new InvalidArgumentError('definitionId must be a non-empty string');
    if (!this.s.definitions[req.definitionId] && !this.s.processes[req.upid]) {
      throw new NotFoundError(`process definition "${req.definitionId}" does not exist`);
    }
    if (req.configuration !== undefined && !isObject(req.configuration)) throw new InvalidArgumentError('configuration must be an object');
    const queueingMode = req.queueingMode ?? DEFAULT_QUEUEING_MODE;
    if (!QUEUEING_MODES.includes(queueingMode)) throw new InvalidArgumentError(`queueingMode must be one of ${QUEUEING_MODES.join(', ')}`);
    const restartMode = req.restartMode ?? DEFAULT_RESTART_MODE;
    if (!RESTART_MODES.includes(restartMode)) throw new InvalidArgumentError(`restartMode must be one of ${RESTART_MODES.join(', ')}`);
    for (const [field, v] of [['executionEngine', req.executionEngine], ['nodeExclusive', req.nodeExclusive]] as const) {
      if (v !== undefined && (typeof v !== 'string' || v === '')) throw new InvalidArgumentError(`${field} must be a non-empty string`);
    }
    if (req.subscribers !== undefined && (!Array.isArray(req.subscribers) || req.subscribers.some((x) => typeof x !== 'string' || x === ''))) {
      throw new InvalidArgumentError('subscribers must be a list of non-empty strings');
    }
    return {
      definitionId: req.definitionId,
      configuration: clone(req.configuration ?? {}),
      constraints: parseConstraints(req.constraints),
      queueingMode,
      restartMode,
      ...(req.executionEngine !== undefined ? { executionEngine: req.executionEngine } : {}),
      ...(req.nodeExclusive !== undefined ? { nodeExclusive: req.nodeExclusive } : {}),
      subscribers: [...(req.subscribers ?? [])],
    };
  }

  private setState(p: ProcessRecord, state: ProcessState, now: number): void {
    if (p.state === state) return;
    p.state = state;
    p.stateChangedAt = now;
    this.touch(p);
    this.notify(p);
  }

  private notify(p: ProcessRecord): void {
    for (const subscriber of p.subscribers) this.fx.push({ type: 'notify', subscriber, upid: p.upid, state: p.state, round: p.round });
  }

  /** Moves the process to a new round in `state` (a queued one, or held for boot); not placed any more. */
  private nextRound(p: ProcessRecord, state: 'REQUESTED' | 'DIED_REQUESTED' | 'UNSCHEDULED_PENDING', now: number): void {
    delete p.assigned;
    delete p.hostname;
    p.round += 1;
    p.state = state;
    p.stateChangedAt = now;
    this.touch(p);
    this.notify(p);
    if (state !== 'UNSCHEDULED_PENDING') this.enqueue(p);
  }

  private enqueue(p: ProcessRecord): void {
    this.dequeue(p.upid);
    this.s.queue.push({ upid: p.upid, round: p.round });
    this.queued.add(p.upid);
  }

  /** The queue holds at most one entry per upid (enqueue replaces it). */
  private dequeue(upid: string): void {
    this.throttled.delete(upid);
    if (!this.queued.delete(upid)) return;
    const i = this.s.queue.findIndex((e) => e.upid === upid);
    if (i < 0) return;
    this.s.queue.splice(i, 1);
    if (i < this.judged) this.judged--;
  }

  /** Clears the process's placement; the agent's slot frees when the agent reports the round gone. */
  private release(p: ProcessRecord): void {
    if (p.assigned) this.touch(p);
    delete p.assigned;
  }

  /** Applies an agent's report about the current round of a process placed on that agent. */
  private applyReport(p: ProcessRecord, reported: AgentProcessState, now: number): void {
    if (reported === p.state) return;
    switch (reported) {
      case 'PENDING':
        if (p.state === 'ASSIGNED') this.setState(p, 'PENDING', now);
        return;
      case 'RUNNING':
        if (p.state === 'ASSIGNED' || p.state === 'PENDING') {
          p.starts += 1;
          this.setState(p, 'RUNNING', now);
        }
        return;
      case 'TERMINATING':
        // The agent is stopping it on its own; its end report decides what follows.
        return;
      case 'REJECTED':
        // It never ran there: placed again in a new round whatever its restart mode (not a failed run).
        if (p.state === 'TERMINATING') {
          this.release(p);
          this.setState(p, 'TERMINATED', now);
        } else this.nextRound(p, p.starts > 0 ? 'DIED_REQUESTED' : 'REQUESTED', now);
        return;
      case 'TERMINATED':
      case 'EXITED':
      case 'FAILED':
        if (p.state === 'TERMINATING') {
          this.release(p);
          this.setState(p, 'TERMINATED', now);
        } else if (shouldRestart(p.restartMode, reported)) {
          this.nextRound(p, 'DIED_REQUESTED', now);
        } else {
          this.release(p);
          this.setState(p, reported, now);
        }
        return;
    }
  }

  /** Forgets an agent; its processes go to the next round or fail, by restart mode. */
  private dropAgent(agentId: string, now: number, reason: string, lastDitch = true): void {
    const agent = this.s.agents[agentId];
    if (!agent) return;
    delete this.s.agents[agentId];
    this.agentList = undefined;
    this.rebusy(agentId);
    this.retiringAgents.delete(agentId);
    this.changes.agents.add(agentId);
    this.changes.agentSetChanged = true;
    this.unhear(agentId, agent.lastHeardAt);
    this.countAgentType(agent.engineType, -1);
    for (const e of agent.assigned) this.unhold(e.upid, agentId);
    this.agentsEpoch++;
    this.fleetEpoch++;
    this.capacityChanged();
    for (const p of Object.values(this.s.processes)) {
      if (p.assigned?.agentId !== agentId) continue;
      // Last-ditch: should the agent still be alive, it stops the round nobody tracks any more.
      if (lastDitch) this.fx.push({ type: 'terminate', agentId, nodeId: agent.nodeId, upid: p.upid, round: p.round });
      p.lastError = reason;
      this.touch(p);
      if (p.state === 'TERMINATING') {
        this.release(p);
        this.setState(p, 'TERMINATED', now);
      } else if (shouldRestart(p.restartMode, 'FAILED')) {
        this.nextRound(p, 'DIED_REQUESTED', now);
      } else {
        this.release(p);
        this.setState(p, 'FAILED', now);
      }
    }
  }

  /** The slot table of agents that may take work now. */
  private slotTable(): SlotTable {
    const nodes = new Map<string, SlotNode>();
    for (const a of this.allAgents()) {
      let node = nodes.get(a.nodeId);
      if (!node) nodes.set(a.nodeId, (node = { nodeId: a.nodeId, agents: [], occupied: false, exclusive: [] }));
      if (a.assigned.length > 0) node.occupied = true;
      for (const e of a.assigned) {
        const tag = this.s.processes[e.upid]?.nodeExclusive;
        if (tag !== undefined && !node.exclusive.includes(tag)) node.exclusive.push(tag);
      }
      const free = a.slots - a.assigned.length;
      if (a.health === 'OK' && !a.retiring && free > 0) {
        node.agents.push({ agentId: a.agentId, nodeId: a.nodeId, engineType: a.engineType, free, properties: a.properties });
      }
    }
    // A node none of whose agents may take work now is of no use to a pass.
    return { nodes: [...nodes.values()].filter((n) => n.agents.length > 0) };
  }

  /**
   * One matching pass over the queue, in queue order: over the whole queue when capacity may have
   * grown since the last pass (or a throttled start fell due), else over the entries queued since.
   */
  private matchmake(now: number): void {
    const full = this.capacityGrew || (this.throttledDue !== undefined && now >= this.throttledDue);
    const queue = this.s.queue;
    const start = full ? 0 : this.judged;
    if (start >= queue.length) {
      if (full && queue.length === 0) {
        this.throttled.clear();
        this.capacityGrew = false;
        this.throttledDue = undefined;
        this.judged = 0;
      }
      return;
    }
    this.passes.matching++;
    if (full) this.throttled.clear();
    const table = (this.table ??= this.slotTable());
    // The entries kept are moved down in place: those before `start` stay as they are, and copying
    // them would make each pass cost the whole queue.
    let kept = start;
    let throttledDue = full ? undefined : this.throttledDue;
    for (let i = start; i < queue.length; i++) {
      const entry = queue[i]!;
      const p = this.s.processes[entry.upid];
      if (!p || p.round !== entry.round || !isQueued(p.state)) {
        this.queued.delete(entry.upid);
        this.throttled.delete(entry.upid);
        continue;
      }
      const due = this.startDueAt(p.upid);
      if (due !== undefined && now < due) {
        queue[kept++] = entry;
        this.throttled.add(entry.upid);
        if (throttledDue === undefined || due < throttledDue) throttledDue = due;
        continue;
      }
      this.throttled.delete(entry.upid);
      const placement = pickPlacement(table, {
        constraints: p.constraints,
        ...(p.executionEngine !== undefined ? { engineType: p.executionEngine } : {}),
        ...(p.nodeExclusive !== undefined ? { nodeExclusive: p.nodeExclusive } : {}),
      });
      if (placement) {
        occupy(table, placement, p.nodeExclusive);
        const agent = this.s.agents[placement.agentId]!;
        if (agent.assigned.length === 0) this.agentsEpoch++;
        agent.assigned.push({ upid: p.upid, round: p.round });
        this.rebusy(agent.agentId);
        this.hold(p.upid, agent.agentId);
        this.changes.agents.add(agent.agentId);
        this.queued.delete(p.upid);
        p.assigned = { ...placement };
        this.touch(p);
        const hostname = agent.properties.hostname;
        if (typeof hostname === 'string') p.hostname = hostname;
        p.lastLaunchAt = now;
        this.setState(p, 'ASSIGNED', now);
        this.fx.push({
          type: 'launch',
          ...placement,
          upid: p.upid,
          round: p.round,
          definition: clone(p.definition),
          configuration: deepMerge(p.definition.config, p.configuration),
        });
        continue;
      }
      if (p.state !== 'WAITING') this.setState(p, queueVerdict(p.queueingMode, p.starts), now);
      if (p.state === 'WAITING') queue[kept++] = entry;
      else this.queued.delete(entry.upid);
    }
    queue.length = kept;
    this.judged = kept;
    this.capacityGrew = false;
    this.throttledDue = throttledDue;
  }

  /**
   * Recomputes each engine type's need whose inputs changed (the plan is pure: the same inputs give
   * the same plan); tells its domain when the need changed.
   */
  private updateNeeds(): void {
    for (const upid of this.recount) this.countPart(upid);
    this.recount.clear();
    const types = new Set<string>(Object.keys(this.options.engines));
    for (const type of this.agentTypes.keys()) types.add(type);
    for (const type of this.liveCount.keys()) types.add(type);
    for (const type of [...types].sort()) {
      const previous = this.s.needs[type];
      const queued = this.waitingCount.get(type) ?? 0;
      const running = this.holdingCount.get(type) ?? 0;
      // The last need is an input: a plan that named retirees may drop further on the next call.
      const inputs = `${queued} ${running} ${this.agentsEpoch} ${previous?.preserveN ?? '-'}`;
      if (this.planned.get(type) === inputs) continue;
      this.planned.set(type, inputs);
      this.passes.needs++;
      let fleet = this.fleets.get(type);
      if (fleet?.epoch !== this.fleetEpoch) {
        const ofType = this.allAgents().filter((a) => a.engineType === type);
        fleet = { epoch: this.fleetEpoch, agents: ofType, capacity: this.capacityOf(type, ofType) };
        this.fleets.set(type, fleet);
      }
      const ofType = fleet.agents;
      const plan = planCountedNeed({
        queued,
        running,
        busyWorkers: this.busyAgents.get(type)?.size ?? 0,
        workers: () => workersOf(ofType),
        capacity: fleet.capacity,
        previous: previous?.preserveN,
      });
      // The same size may come with other retirees (none, say, once the work is back): a worker no
      // longer named must take work again, or a process could wait on it forever.
      if (previous && previous.preserveN === plan.preserveN && sameList(previous.retire, plan.retire)) continue;
      this.s.needs[type] = plan;
      // With no retirees named, only the agents named before can change.
      const named = plan.retire.length > 0 ? ofType : [...this.retiringAgents].map((id) => this.s.agents[id]!).filter((a) => a.engineType === type);
      for (const a of named) {
        const retiring = plan.retire.includes(a.nodeId);
        if (a.retiring === retiring) continue;
        a.retiring = retiring;
        if (retiring) this.retiringAgents.add(a.agentId);
        else this.retiringAgents.delete(a.agentId);
        this.changes.agents.add(a.agentId);
        this.capacityChanged();
      }
      this.fx.push({ type: 'need', engineType: type, domain: domainOf(type), preserveN: plan.preserveN, retire: [...plan.retire] });
    }
  }

  /**
   * Counts the upid's part in the needs again. The counts are those the plan reads: per engine type,
   * the processes not final; those queued (or held for boot) that no agent of their type holds; and
   * the distinct upids (processes or not) the type's agents hold.
   */
  private countPart(upid: string): void {
    const old = this.parts.get(upid);
    if (old) {
      bump(this.liveCount, old.live, -1);
      bump(this.waitingCount, old.waiting, -1);
      for (const t of old.held) bump(this.holdingCount, t, -1);
    }
    const held: string[] = [];
    for (const id of this.holders.get(upid) ?? []) {
      const t = this.s.agents[id]?.engineType;
      if (t !== undefined && !held.includes(t)) held.push(t);
    }
    const p = this.s.processes[upid];
    const type = p ? this.engineTypeOf(p) : undefined;
    const part: NeedPart = { held };
    if (p && !isFinal(p.state)) part.live = type;
    if (p && (isQueued(p.state) || p.state === 'UNSCHEDULED_PENDING') && !held.includes(type!)) part.waiting = type;
    if (part.live === undefined && part.waiting === undefined && held.length === 0) {
      this.parts.delete(upid);
      return;
    }
    this.parts.set(upid, part);
    bump(this.liveCount, part.live, 1);
    bump(this.waitingCount, part.waiting, 1);
    for (const t of held) bump(this.holdingCount, t, 1);
  }

  private engineTypeOf(p: ProcessRecord): string {
    if (p.assigned) {
      const agent = this.s.agents[p.assigned.agentId];
      if (agent) return agent.engineType;
    }
    return p.executionEngine ?? this.options.defaultEngineType;
  }

  private capacityOf(type: string, agents: readonly AgentRecord[]): EngineCapacity {
    const conf = this.options.engines[type] ?? {};
    const reported = agents.reduce((n, a) => Math.max(n, a.slots), 0);
    const slotsPerWorker = conf.slotsPerWorker ?? (reported > 0 ? reported : this.options.engineDefaults.slotsPerWorker);
    return { ...this.options.engineDefaults, ...conf, slotsPerWorker };
  }
}

// --- helpers ---------------------------------------------------------------------------------------

/** The earlier of `next` and `t`, where a `t` not after `now` does not count. */
function earlier(next: number | undefined, t: number | undefined, now: number): number | undefined {
  return t !== undefined && t > now && (next === undefined || t < next) ? t : next;
}

/** Adds `delta` to the count of `key` (none: nothing); a count that reaches 0 is removed. */
function bump(counts: Map<string, number>, key: string | undefined, delta: number): void {
  if (key === undefined) return;
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

type ScheduleParams = Pick<
  ProcessRecord,
  'definitionId' | 'configuration' | 'constraints' | 'queueingMode' | 'restartMode' | 'executionEngine' | 'nodeExclusive' | 'subscribers'
>;

const COMPARED: ReadonlyArray<keyof ScheduleParams> = [
  'definitionId',
  'configuration',
  'constraints',
  'queueingMode',
  'restartMode',
  'executionEngine',
  'nodeExclusive',
  'subscribers',
];

/** The first parameter in which a repeated schedule differs from the process (the name is decoration). */
function differingField(p: ProcessRecord, params: ScheduleParams): string | undefined {
  return COMPARED.find((key) => canonical(p[key]) !== canonical(params[key]));
}

function checkDefinition(raw: ProcessDefinition): ProcessDefinition {
  if (!isObject(raw)) throw new InvalidArgumentError('a process definition must be an object');
  if (typeof raw.id !== 'string' || raw.id.trim() === '') throw new InvalidArgumentError('definition id must be a non-empty string');
  if (typeof raw.type !== 'string' || raw.type === '') throw new InvalidArgumentError(`definition "${raw.id}": type must be a non-empty string`);
  if (!isObject(raw.executable)) throw new InvalidArgumentError(`definition "${raw.id}": executable must be an object`);
  if (raw.config !== undefined && !isObject(raw.config)) throw new InvalidArgumentError(`definition "${raw.id}": config must be an object`);
  if (raw.description !== undefined && typeof raw.description !== 'string') throw new InvalidArgumentError(`definition "${raw.id}": description must be a string`);
  return {
    id: raw.id,
    type: raw.type,
    executable: clone(raw.executable),
    config: clone(raw.config ?? {}),
    ...(raw.description !== undefined ? { description: raw.description } : {}),
  };
}

function checkHeartbeat(beat: AgentHeartbeat): void {
  if (!isObject(beat)) throw new InvalidArgumentError('a heartbeat must be an object');
  for (const field of ['agentId', 'nodeId', 'engineType'] as const) {
    if (typeof beat[field] !== 'string' || beat[field] === '') throw new InvalidArgumentError(`heartbeat ${field} must be a non-empty string`);
  }
  if (!Number.isInteger(beat.slots) || beat.slots < 0) throw new InvalidArgumentError(`heartbeat from "${beat.agentId}": slots must be a whole number`);
  if (typeof beat.at !== 'number' || !Number.isFinite(beat.at)) throw new InvalidArgumentError(`heartbeat from "${beat.agentId}": at must be a time in ms`);
  if (beat.properties !== undefined && !isObject(beat.properties)) throw new InvalidArgumentError(`heartbeat from "${beat.agentId}": properties must be an object`);
  if (!Array.isArray(beat.processes)) throw new InvalidArgumentError(`heartbeat from "${beat.agentId}": processes must be a list`);
  for (const r of beat.processes) {
    if (!isObject(r) || typeof r.upid !== 'string' || !Number.isInteger(r.round) || !isAgentState(r.state)) {
      throw new InvalidArgumentError(`heartbeat from "${beat.agentId}": bad process report ${JSON.stringify(r)}`);
    }
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A deep copy. What the core copies is JSON (the state, and requests bound for it), which a walk
 * copies several times faster than structuredClone; anything that is not plain data (a Date, a Map,
 * a function) goes to structuredClone, which copies or refuses it as before.
 */
function clone<T>(v: T): T {
  return copyJson(v) as T;
}

function copyJson(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return typeof v === 'function' || typeof v === 'symbol' ? structuredClone(v) : v;
  if (Array.isArray(v)) {
    if (Object.getPrototypeOf(v) !== Array.prototype) return structuredClone(v);
    return v.map(copyJson);
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return structuredClone(v);
  const out: JsonObject = {};
  for (const k of Object.keys(v)) {
    const x = copyJson((v as JsonObject)[k]);
    // A "__proto__" key (JSON.parse makes one) must stay a key, not set the copy's prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    else out[k] = x;
  }
  return out;
}

/** Whether two JSON objects are equal as canonical() sees them: first key by key (the usual case), else canonically. */
function sameJson(a: JsonObject, b: JsonObject): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length === kb.length && ka.every((k, i) => kb[i] === k && a[k] === b[k])) return true;
  return canonical(a) === canonical(b);
}

/** The workers of a fleet as the need plan sees them: one per node, busy if any of its agents holds a round. */
function workersOf(agents: readonly AgentRecord[]): WorkerView[] {
  const workers = new Map<string, WorkerView>();
  for (const a of agents) {
    const w = workers.get(a.nodeId);
    if (!w) workers.set(a.nodeId, { nodeId: a.nodeId, firstHeardAt: a.firstHeardAt, busy: a.assigned.length > 0 });
    else workers.set(a.nodeId, { nodeId: a.nodeId, firstHeardAt: Math.min(w.firstHeardAt, a.firstHeardAt), busy: w.busy || a.assigned.length > 0 });
  }
  return [...workers.values()];
}

/** `over` on top of `base`, objects merged key by key, anything else (arrays too) replaced. */
export function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = clone(base);
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? deepMerge(b, v) : clone(v);
  }
  return out;
}

function canonical(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return (a ?? []).length === b.length && b.every((x, i) => a![i] === x);
}
