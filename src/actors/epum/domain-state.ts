/**
 * A domain's persisted state and the one way it changes: a DomainDraft over a state, which copies
 * the instance and launch maps on first write, records every change of an instance's state or health
 * (to tell subscribers) and collects what the actor shell must do after the turn (tell the
 * provisioner, the registry, set the tick). Pure: no clock, no I/O.
 */
import type { EngineAction, HealthState, InstanceState, Json } from './engine.js';
import { isFinalState as isFinal } from '../provisioner-states.js';
import type { DomainConfig, DomainInstanceView, ReconfigureReply } from './protocol.js';

/**
 * One instance of the domain, as the domain knows it: what describe shows of it (DomainInstanceView,
 * less what lives only in the actor's memory), keyed by `id`, and whether the provisioner reported it.
 */
export type DomainInstance = Omit<DomainInstanceView, 'instance_id' | 'last_heartbeat' | 'metrics'> & {
  id: string;
  /** The provisioner has reported on it at least once (until then it is REQUESTING). */
  reported: boolean;
  /** The provisioner's state_changed_at of the last report applied (older reports are stale). */
  reported_at?: number;
};

/** One provision the domain told the provisioner: retried (same launch id) until it is reported. */
export interface LaunchRecord {
  launch_id: string;
  site: string;
  deployable_type: string;
  count: number;
  vars: Record<string, string>;
  asked_at: number;
  attempts: number;
  /** The provisioner reported on one of its instances. */
  acked: boolean;
}

export interface DomainState {
  /** '' while the actor holds no domain (never created, or its creation was refused). */
  id: string;
  generation: string;
  created_at: number;
  definition?: string;
  config: DomainConfig;
  /** A reconfigured config, applied on the next tick. */
  pending?: DomainConfig;
  version: number;
  applied_version: number;
  engine_state: Json;
  /** Set by remove: the domain terminates everything, then tells the registry it is gone. */
  removing?: { since: number; reported: boolean };
  /** In launch order. */
  instances: Record<string, DomainInstance>;
  launches: Record<string, LaunchRecord>;
  /** Launches asked for so far (names them). */
  seq: number;
  subscribers: string[];
  error?: string;
  last_tick_at?: number;
  last_decision?: { at: number; launched: number; destroyed: string[] };
}

export function emptyDomainState(): DomainState {
  return {
    id: '',
    generation: '',
    created_at: 0,
    config: { engine: '', engine_conf: {}, health: { monitor_health: true, boot_timeout: 0, missing_timeout: 0, really_missing_timeout: 0, zombie_seconds: 0 } },
    version: 0,
    applied_version: 0,
    engine_state: null,
    instances: {},
    launches: {},
    seq: 0,
    subscribers: [],
  };
}

export function isConfigured(state: DomainState): boolean {
  return state.id !== '';
}

/** Final states are the provisioner's: one list for both. */
export { isFinalState as isFinal } from '../provisioner-states.js';

/** On its way up (counted by engines as capacity to come): the engines' own test of it. */
export { isPendingState } from './engine.js';

/** The domain asked for its termination, or the provisioner reports it terminating or gone. */
export function isGoing(i: DomainInstance): boolean {
  return i.terminate_asked_at !== undefined || i.state === 'TERMINATING' || isFinal(i.state);
}

/** Own entries only: ids such as "constructor" must not find Object.prototype's members. */
export function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** What the shell does after a turn, in order. */
export type DomainEffect =
  | { kind: 'provision'; launch: LaunchRecord; subscriber: string }
  | { kind: 'terminate'; instance_ids: string[] }
  /** (Re)start the tick timer at this interval. */
  | { kind: 'tick'; ms: number }
  | { kind: 'registered' }
  | { kind: 'removed' };

export function viewOf(i: DomainInstance, heard?: { at: number; metrics: Record<string, number> }): DomainInstanceView {
  const v: DomainInstanceView = {
    instance_id: i.id,
    launch_id: i.launch_id,
    state: i.state,
    health: i.health,
    health_since: i.health_since,
    site: i.site,
    deployable_type: i.deployable_type,
    vars: i.vars,
    launch_time: i.launch_time,
    state_changed_at: i.state_changed_at,
  };
  if (i.state_desc !== undefined) v.state_desc = i.state_desc;
  if (i.state_detail !== undefined) v.state_detail = i.state_detail;
  if (i.health_reason !== undefined) v.health_reason = i.health_reason;
  if (i.node_id !== undefined) v.node_id = i.node_id;
  if (i.address !== undefined) v.address = i.address;
  if (i.running_since !== undefined) v.running_since = i.running_since;
  if (i.terminate_asked_at !== undefined) v.terminate_asked_at = i.terminate_asked_at;
  if (heard) {
    v.last_heartbeat = heard.at;
    if (Object.keys(heard.metrics).length > 0) v.metrics = { ...heard.metrics };
  }
  return v;
}

/**
 * A state being changed by one turn. Reads see the writes made so far; the base state is never
 * modified, so a turn that throws leaves it as it was.
 */
export class DomainDraft {
  readonly state: DomainState;
  readonly effects: DomainEffect[] = [];
  /** Instances whose state or health changed, last version of each, in order of first change. */
  readonly changed = new Map<string, DomainInstance>();
  /** An instance that had been RUNNING was lost (gone, or judged unhealthy): decide at once. */
  lost = false;
  private instancesCopied = false;
  private launchesCopied = false;

  constructor(
    base: DomainState,
    readonly now: number,
  ) {
    this.state = { ...base };
  }

  instance(id: string): DomainInstance | undefined {
    return own(this.state.instances, id);
  }

  instances(): DomainInstance[] {
    return Object.values(this.state.instances);
  }

  /** Replaces an instance record; a change of state or health is recorded for subscribers. */
  put(next: DomainInstance): DomainInstance {
    if (!this.instancesCopied) {
      this.state.instances = { ...this.state.instances };
      this.instancesCopied = true;
    }
    const before = own(this.state.instances, next.id);
    this.state.instances[next.id] = next;
    if (!before || before.state !== next.state || before.health !== next.health) this.changed.set(next.id, next);
    return next;
  }

  patch(i: DomainInstance, fields: Partial<DomainInstance>): DomainInstance {
    return this.put({ ...i, ...fields });
  }

  /** Sets an instance's health (and when it changed); no-op when unchanged. */
  setHealth(i: DomainInstance, health: HealthState, reason?: string): DomainInstance {
    if (i.health === health && i.health_reason === reason) return i;
    const next: DomainInstance = { ...i, health, health_since: health === i.health ? i.health_since : this.now };
    if (reason === undefined) delete next.health_reason;
    else next.health_reason = reason;
    if (i.state === 'RUNNING' && (health === 'MISSING' || health === 'ZOMBIE' || health === 'PROCESS_ERROR') && !isGoing(i)) this.lost = true;
    return this.put(next);
  }

  drop(id: string): void {
    if (!own(this.state.instances, id)) return;
    if (!this.instancesCopied) {
      this.state.instances = { ...this.state.instances };
      this.instancesCopied = true;
    }
    delete this.state.instances[id];
  }

  launch(id: string): LaunchRecord | undefined {
    return own(this.state.launches, id);
  }

  putLaunch(l: LaunchRecord): void {
    if (!this.launchesCopied) {
      this.state.launches = { ...this.state.launches };
      this.launchesCopied = true;
    }
    this.state.launches[l.launch_id] = l;
  }

  dropLaunch(id: string): void {
    if (!own(this.state.launches, id)) return;
    if (!this.launchesCopied) {
      this.state.launches = { ...this.state.launches };
      this.launchesCopied = true;
    }
    delete this.state.launches[id];
  }

  effect(e: DomainEffect): void {
    this.effects.push(e);
  }

  /** Asks for the termination of these instances (one message), marking when it was asked. */
  terminate(ids: readonly string[]): void {
    const asked: string[] = [];
    for (const id of ids) {
      const i = this.instance(id);
      if (!i) continue;
      this.patch(i, { terminate_asked_at: this.now });
      asked.push(id);
    }
    if (asked.length > 0) this.effect({ kind: 'terminate', instance_ids: asked });
  }
}

/** Summaries for the reply of a reconfigure. */
export function reconfigureReply(state: DomainState): ReconfigureReply {
  return { version: state.version, pending_config: state.pending ?? state.config };
}

/** The decisions an engine asked for, for describe. */
export function decisionSummary(now: number, actions: readonly EngineAction[], destroyed: readonly string[]): DomainState['last_decision'] {
  const launched = actions.reduce((n, a) => n + (a.type === 'launch' ? a.count : 0), 0);
  return { at: now, launched, destroyed: [...destroyed] };
}
