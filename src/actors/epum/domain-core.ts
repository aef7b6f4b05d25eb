/**
 * A domain's requests and its tick, as pure functions over a DomainDraft (./domain-state.ts): each
 * reads the message, the time and what the shell observed (membership, heartbeats, sensors), changes
 * records, and leaves the provisioner calls and notifications to make in the draft. A refusal throws
 * the CeiError the caller should see; the draft is then dropped, so nothing changed.
 *
 * The tick (`step`), in order:
 *   1. apply a pending reconfigure (the config and version in force change only here);
 *   2. judge health (./domain-health.ts);
 *   3. tell again the provisions and terminations the provisioner has not acknowledged;
 *   4. call the engine's pure `decide` (or, while removing, terminate everything) and turn its
 *      actions into provisions and terminations;
 *   5. forget final instances past their retention.
 * The shell also steps at once, between ticks, when the domain lost a RUNNING instance (gone, or
 * judged MISSING): a crash is repaired without waiting for the tick. Launch failures wait for the
 * tick, so a launch that keeps failing is retried once per tick, not in a tight loop.
 *
 * What the engine sees (the contract of ./engine.ts): every instance the domain launched, including
 * those the provisioner has not reported yet (REQUESTING), final ones until they are forgotten, and
 * an instance whose termination the domain asked for as TERMINATING even before the provisioner
 * says so, so that it is never counted as capacity once it is on its way out.
 */
import { CeiError, FailedPreconditionError } from '../../errors.js';
import type { InstanceView } from '../provisioner-protocol.js';
import { mergeEngineConf, parseEngineConf, type Engine, type EngineInstance, type SensorReadings } from './engine.js';
import {
  DOMAIN_VAR,
  HEALTH_DEFAULTS,
  type DomainConfig,
  type DomainDescription,
  type DomainMessageOf,
  type Reconfigure,
  type RemoveReply,
} from './protocol.js';
import type { EpumOptions } from './options.js';
import { isZombieBeat, judgeAll, type HealthInputs } from './domain-health.js';
import {
  DomainDraft,
  decisionSummary,
  isFinal,
  isGoing,
  viewOf,
  type DomainInstance,
  type DomainState,
  type LaunchRecord,
} from './domain-state.js';

/** What a step may know besides the state: the time, options, the engine, and the shell's observations. */
export interface StepInputs {
  now: number;
  options: EpumOptions;
  /** The domain's engine on this node; undefined when this node does not have it. */
  engine: Engine | undefined;
  health: Omit<HealthInputs, 'conf' | 'now'>;
  sensors: SensorReadings;
}

/** The tick interval of a config. */
export function tickMsOf(config: DomainConfig, options: EpumOptions): number {
  return config.tick_seconds === undefined ? options.tickMs : Math.max(10, Math.round(config.tick_seconds * 1000));
}

/** The subscriber key the domain gives the provisioner for its launches. */
export function selfKey(id: string): string {
  return `epum/${id}`;
}

// --- config ----------------------------------------------------------------------------------------

/** Checks an engine conf with the engine (InvalidArgumentError naming each bad key) and returns it typed. */
export function checkEngineConf(engine: Engine, conf: Record<string, unknown>): unknown {
  return parseEngineConf(engine, conf);
}

/**
 * The (deployable type, site) pairs a conf launches at, read by convention from the keys the
 * built-in engines use: `deployable_type` and `site` at the top, or a `sites` list of `{site,
 * deployable_type?}` (the overflow engine). A user engine that names its targets otherwise is not
 * checked against the registry when its domain is added.
 */
export function launchTargets(conf: unknown): Array<{ deployable_type: string; site: string }> {
  if (!conf || typeof conf !== 'object') return [];
  const c = conf as Record<string, unknown>;
  const dt = typeof c.deployable_type === 'string' ? c.deployable_type : undefined;
  const out: Array<{ deployable_type: string; site: string }> = [];
  if (Array.isArray(c.sites)) {
    for (const s of c.sites as unknown[]) {
      if (!s || typeof s !== 'object') continue;
      const entry = s as Record<string, unknown>;
      const sdt = typeof entry.deployable_type === 'string' ? entry.deployable_type : dt;
      if (typeof entry.site === 'string' && sdt !== undefined) out.push({ deployable_type: sdt, site: entry.site });
    }
  } else if (typeof c.site === 'string' && dt !== undefined) {
    out.push({ deployable_type: dt, site: c.site });
  }
  const seen = new Set<string>();
  return out.filter((t) => {
    const key = `${t.deployable_type}\x00${t.site}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The config a reconfigure would make of the current one (pending included); not yet checked by the engine. */
export function reconfigured(state: DomainState, patch: Reconfigure): DomainConfig {
  const base = state.pending ?? state.config;
  const next: DomainConfig = { ...base, health: { ...base.health } };
  if (patch.engine_conf) next.engine_conf = mergeEngineConf(base.engine_conf, patch.engine_conf);
  if (patch.health) {
    for (const [key, value] of Object.entries(patch.health) as Array<[keyof typeof HEALTH_DEFAULTS, unknown]>) {
      if (value === undefined) continue;
      (next.health as Record<string, unknown>)[key] = value === null ? HEALTH_DEFAULTS[key] : value;
    }
  }
  if (patch.tick_seconds === null) delete next.tick_seconds;
  else if (patch.tick_seconds !== undefined) next.tick_seconds = patch.tick_seconds;
  return next;
}

/** Whether two configs are the same (the engine conf compared as JSON with sorted keys). */
export function sameConfig(a: DomainConfig, b: DomainConfig): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}

// --- requests --------------------------------------------------------------------------------------

/** Makes the draft a new domain (the shell checked the config first). */
export function createDomain(d: DomainDraft, id: string, msg: DomainMessageOf<'create'>, engine: Engine, options: EpumOptions): void {
  const typed = checkEngineConf(engine, msg.config.engine_conf);
  const s = d.state;
  s.id = id;
  s.generation = d.now.toString(36);
  s.created_at = d.now;
  if (msg.definition !== undefined) s.definition = msg.definition;
  s.config = msg.config;
  s.version = 1;
  s.applied_version = 1;
  s.engine_state = engine.initialState(typed);
  d.effect({ kind: 'tick', ms: tickMsOf(msg.config, options) });
  d.effect({ kind: 'registered' });
}

/** Stores a checked reconfigured config, applied on the next tick. */
export function applyReconfigure(d: DomainDraft, config: DomainConfig): void {
  if (d.state.removing) throw new FailedPreconditionError(`domain "${d.state.id}" is being removed`);
  d.state.pending = config;
  d.state.version += 1;
}

/** Starts removing: the next step terminates every live instance; the domain is deleted once all are gone. */
export function startRemoval(d: DomainDraft): RemoveReply {
  if (!d.state.removing) {
    d.state.removing = { since: d.now, reported: false };
    delete d.state.pending;
  }
  const terminating = d.instances().filter((i) => !isFinal(i.state)).length;
  return { id: d.state.id, status: 'removing', terminating };
}

export function subscribe(d: DomainDraft, key: string): { changed: boolean } {
  if (d.state.subscribers.includes(key)) return { changed: false };
  d.state.subscribers = [...d.state.subscribers, key];
  return { changed: true };
}

export function unsubscribe(d: DomainDraft, key: string): { changed: boolean } {
  if (!d.state.subscribers.includes(key)) return { changed: false };
  d.state.subscribers = d.state.subscribers.filter((s) => s !== key);
  return { changed: true };
}

/**
 * Applies what the provisioner reports. A report older than the last one applied, or one that would
 * bring a final instance back, is stale and ignored (reports of one instance normally arrive in
 * order; this keeps a late duplicate harmless).
 */
export function applyReports(d: DomainDraft, views: readonly InstanceView[]): void {
  for (const v of views) {
    const i = d.instance(v.instance_id);
    if (!i) continue;
    const launch = d.launch(i.launch_id);
    if (launch && !launch.acked) d.putLaunch({ ...launch, acked: true });
    if (i.reported_at !== undefined && v.state_changed_at < i.reported_at) continue;
    if (isFinal(i.state) && !isFinal(v.state as DomainInstance['state'])) continue;
    const next: DomainInstance = { ...i, state: v.state, reported: true, reported_at: v.state_changed_at };
    if (v.state_desc !== undefined) next.state_desc = v.state_desc;
    else delete next.state_desc;
    if (v.state_detail !== undefined) next.state_detail = v.state_detail;
    else delete next.state_detail;
    if (v.node_id !== undefined) next.node_id = v.node_id;
    if (v.address !== undefined) next.address = v.address;
    if (v.state !== i.state) {
      next.state_changed_at = d.now;
      if (v.state === 'RUNNING') next.running_since = d.now;
      // Capacity that was working is gone without the domain asking: replace it at once.
      if (i.state === 'RUNNING' && i.terminate_asked_at === undefined && v.state !== 'RUNNING') d.lost = true;
    }
    d.put(next);
  }
}

/**
 * A worker's heartbeat (the shell records when it was heard). A heartbeat from an instance that is
 * going or gone, past zombie_seconds, makes it a ZOMBIE; one carrying an error makes a RUNNING
 * instance PROCESS_ERROR.
 */
export function applyHeartbeat(d: DomainDraft, msg: DomainMessageOf<'heartbeat'>): { verdict: 'ok' | 'zombie' | 'unknown' } {
  const i = d.instance(msg.instance_id);
  if (!i) return { verdict: 'unknown' };
  const conf = d.state.config.health;
  if (isZombieBeat(i, d.now, conf)) {
    const reason = `heartbeat ${Math.round((d.now - (i.terminate_asked_at ?? i.state_changed_at)) / 1000)} s after it was ${i.terminate_asked_at !== undefined ? 'asked to terminate' : `reported ${i.state}`}`;
    if (i.health !== 'ZOMBIE') d.setHealth(i, 'ZOMBIE', reason);
    return { verdict: 'zombie' };
  }
  if (i.health === 'ZOMBIE') return { verdict: 'zombie' };
  if (msg.error !== undefined && conf.monitor_health && i.state === 'RUNNING' && !isGoing(i) && i.health !== 'PROCESS_ERROR') {
    d.setHealth(i, 'PROCESS_ERROR', `the worker reported: ${msg.error}`);
  }
  if (msg.node_id !== undefined && i.node_id === undefined) d.patch(d.instance(i.id)!, { node_id: msg.node_id });
  return { verdict: 'ok' };
}

// --- the tick --------------------------------------------------------------------------------------

/** One pass: pending config, health, retries, the engine's decision (or the removal), pruning. */
export function step(d: DomainDraft, inp: StepInputs): void {
  const s = d.state;
  if (s.pending) {
    const before = tickMsOf(s.config, inp.options);
    s.config = s.pending;
    delete s.pending;
    s.applied_version = s.version;
    const after = tickMsOf(s.config, inp.options);
    if (after !== before) d.effect({ kind: 'tick', ms: after });
  }
  judgeAll(d, { ...inp.health, now: d.now, conf: s.config.health });
  retry(d, inp.options);
  if (s.removing) removeStep(d, inp.options);
  else decide(d, inp);
  prune(d, inp.options);
  s.last_tick_at = d.now;
}

/** Tells again what the provisioner has not acknowledged in time. */
function retry(d: DomainDraft, options: EpumOptions): void {
  if (!d.state.removing) {
    for (const l of Object.values(d.state.launches)) {
      if (l.acked || d.now - l.asked_at < options.launchRetryMs) continue;
      const next: LaunchRecord = { ...l, asked_at: d.now, attempts: l.attempts + 1 };
      d.putLaunch(next);
      d.effect({ kind: 'provision', launch: next, subscriber: selfKey(d.state.id) });
    }
  }
  const again: string[] = [];
  for (const i of d.instances()) {
    if (i.terminate_asked_at === undefined || i.state === 'TERMINATING' || isFinal(i.state)) continue;
    if (d.now - i.terminate_asked_at >= options.terminateRetryMs) again.push(i.id);
  }
  d.terminate(again);
}

/** The instances as the engine sees them. */
function engineView(instances: readonly DomainInstance[]): EngineInstance[] {
  return instances.map((i) => ({
    id: i.id,
    state: i.terminate_asked_at !== undefined && !isFinal(i.state) ? 'TERMINATING' : i.state,
    ...(i.state_desc !== undefined && { state_desc: i.state_desc }),
    health: i.health,
    site: i.site,
    deployable_type: i.deployable_type,
    launch_time: i.launch_time,
    vars: i.vars,
  }));
}

function decide(d: DomainDraft, inp: StepInputs): void {
  const s = d.state;
  const engine = inp.engine;
  if (!engine) {
    s.error = `decision engine "${s.config.engine}" is not registered on the node hosting this domain (load it with --engines on every control node)`;
    return;
  }
  let conf: unknown;
  try {
    conf = checkEngineConf(engine, s.config.engine_conf);
  } catch (err) {
    s.error = (err as Error).message;
    return;
  }
  let decision;
  try {
    decision = engine.decide({ conf, state: s.engine_state, instances: engineView(d.instances()), sensors: inp.sensors, now: d.now });
  } catch (err) {
    // Engines never throw on a well-formed input; a user engine that does is reported, not retried in a loop of crashes.
    s.error = `decision engine "${engine.name}" failed: ${err instanceof Error ? err.message : String(err)}`;
    return;
  }
  delete s.error;
  s.engine_state = decision.state;
  const destroyed: string[] = [];
  for (const action of decision.actions) {
    if (action.type === 'destroy') {
      const ids: string[] = [];
      for (const id of action.instance_ids) {
        const i = d.instance(id);
        if (!i) continue;
        if (i.health === 'ZOMBIE') {
          // Killed again, but not every tick: once per zombie_seconds.
          const last = i.terminate_asked_at ?? 0;
          if (d.now - last >= Math.max(1, s.config.health.zombie_seconds) * 1000) ids.push(id);
          continue;
        }
        if (isGoing(i)) continue;
        ids.push(id);
      }
      d.terminate(ids);
      destroyed.push(...ids);
    } else {
      launch(d, action.site, action.deployable_type, action.count, action.vars);
    }
  }
  if (destroyed.length > 0 || decision.actions.some((a) => a.type === 'launch' && a.count > 0)) {
    s.last_decision = decisionSummary(d.now, decision.actions, destroyed);
  }
}

/** Records a launch of `count` instances, REQUESTING until the provisioner reports them, and tells the provisioner. */
function launch(d: DomainDraft, site: string, dt: string, count: number, vars: Record<string, string>): void {
  if (count <= 0) return;
  const s = d.state;
  s.seq += 1;
  const launchId = `${s.id}-${s.generation}-${s.seq}`;
  const record: LaunchRecord = {
    launch_id: launchId,
    site,
    deployable_type: dt,
    count,
    vars: { ...vars, [DOMAIN_VAR]: s.id },
    asked_at: d.now,
    attempts: 1,
    acked: false,
  };
  d.putLaunch(record);
  for (let k = 0; k < count; k++) {
    d.put({
      id: `${launchId}-${k}`,
      launch_id: launchId,
      state: 'REQUESTING',
      reported: false,
      site,
      deployable_type: dt,
      vars: record.vars,
      launch_time: d.now,
      state_changed_at: d.now,
      health: 'OK',
      health_since: d.now,
    });
  }
  d.effect({ kind: 'provision', launch: record, subscriber: selfKey(s.id) });
}

/**
 * While removing: terminate every live instance; once none is left, tell the registry (once). An
 * instance the provisioner has still not reported on long after the removal started (twice the
 * longer retry interval, every termination told again meanwhile) was never launched (its provision
 * was lost): it is taken as gone, so a removal cannot hang on it.
 */
function removeStep(d: DomainDraft, options: EpumOptions): void {
  const removing = d.state.removing!;
  const giveUpAt = removing.since + 2 * Math.max(options.terminateRetryMs, options.launchRetryMs);
  const fresh: string[] = [];
  for (const i of d.instances()) {
    if (isFinal(i.state)) continue;
    if (i.terminate_asked_at === undefined) fresh.push(i.id);
    else if (!i.reported && d.now >= giveUpAt) {
      d.patch(i, { state: 'TERMINATED', state_desc: 'NEVER_LAUNCHED', state_changed_at: d.now });
    }
  }
  d.terminate(fresh);
  if (!removing.reported && d.instances().every((i) => isFinal(i.state))) {
    d.state.removing = { ...removing, reported: true };
    d.effect({ kind: 'removed' });
  }
}

/** Forgets final instances past their retention (and the oldest beyond the cap), and launches with no instance left. */
function prune(d: DomainDraft, options: EpumOptions): void {
  if (d.state.removing) return;
  const final = d.instances().filter((i) => isFinal(i.state));
  const excess = final.length - options.maxFinalInstances;
  final.sort((a, b) => a.state_changed_at - b.state_changed_at);
  final.forEach((i, k) => {
    if (k < excess || d.now - i.state_changed_at > options.retainFinalMs) d.drop(i.id);
  });
  if (final.length === 0) return;
  const used = new Set(d.instances().map((i) => i.launch_id));
  for (const id of Object.keys(d.state.launches)) if (!used.has(id)) d.dropLaunch(id);
}

// --- views -----------------------------------------------------------------------------------------

export interface Observed {
  heard(instanceId: string): { at: number; metrics: Record<string, number> } | undefined;
  sensors: SensorReadings;
  /** Samples per series shown (the latest). */
  samplesShown: number;
}

export function describeDomain(state: DomainState, observed: Observed): DomainDescription {
  const states: Record<string, number> = {};
  const health: Record<string, number> = {};
  for (const i of Object.values(state.instances)) {
    if (isFinal(i.state)) continue;
    states[i.state] = (states[i.state] ?? 0) + 1;
    health[i.health] = (health[i.health] ?? 0) + 1;
  }
  const sensors: DomainDescription['sensors'] = {};
  for (const [name, samples] of Object.entries(observed.sensors)) sensors[name] = samples.slice(-observed.samplesShown);
  const out: DomainDescription = {
    id: state.id,
    status: state.removing ? 'removing' : 'active',
    generation: state.generation,
    created_at: state.created_at,
    config: state.config,
    version: state.version,
    applied_version: state.applied_version,
    engine_state: state.engine_state,
    sensors,
    instances: Object.values(state.instances).map((i) => viewOf(i, observed.heard(i.id))),
    counts: { states, health },
    subscribers: [...state.subscribers],
  };
  if (state.definition !== undefined) out.definition = state.definition;
  if (state.pending) out.pending_config = state.pending;
  if (state.error !== undefined) out.error = state.error;
  if (state.last_tick_at !== undefined) out.last_tick_at = state.last_tick_at;
  if (state.last_decision) out.last_decision = state.last_decision;
  return out;
}

/** Thrown (as NOT_FOUND) for any request to an actor that holds no domain. */
export function noSuchDomain(id: string): CeiError {
  return new CeiError('NOT_FOUND', `no domain "${id}"`);
}
