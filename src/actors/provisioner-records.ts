/**
 * The provisioner's state and the one way records change: a Draft over a state, which copies on
 * first write (a turn that changes one record of ten thousand copies two maps and that record, not
 * the whole state), checks every state change against the lifecycle (./provisioner-states.ts), and
 * collects what the actor shell must do afterwards: the changes to publish and the IaaS calls to
 * start. Pure: no clock, no I/O.
 */
import type { InstanceHandle } from '../iaas/driver.js';
import type { SiteType } from '../iaas/driver.js';
import { checkTransition, isFinalState, type InstanceState, type StateDesc } from './provisioner-states.js';

/** What a site's driver is made from; kept so that a provisioner that failed over can rebuild it. */
export interface SiteConfig {
  type: SiteType;
  settings: Record<string, unknown>;
  /** The registry's version of the site when it was last resolved. */
  version: number;
}

/** One provision request: `count` instances of a deployable type at a site. */
export interface LaunchRecord {
  launch_id: string;
  deployable_type: string;
  site: string;
  count: number;
  vars: Record<string, string>;
  /** Ref keys (`type/id`) told about every change of this launch's instances. */
  subscribers: string[];
  created_at: number;
  /** The resolved launch parameters, once the registry answered the lookup. */
  params?: Record<string, unknown>;
  dt_version?: number;
  /** Lookups asked so far (while REQUESTING). */
  lookups: number;
  /**
   * Launch calls issued so far. Each call's result names its attempt; a result of an older attempt
   * is still applied as an observation of the IaaS, but its error no longer decides a retry.
   */
  attempt: number;
  /** REQUESTING or ERROR_RETRYING: when the lookup or the launch is tried again. */
  retry_at?: number;
}

export interface InstanceRecord {
  instance_id: string;
  launch_id: string;
  state: InstanceState;
  state_desc?: StateDesc;
  /** A human-readable account of the state_desc (a driver's message, an exit status ...). */
  state_detail?: string;
  created_at: number;
  state_changed_at: number;
  /** When it entered PENDING: the ready timeout counts from here. */
  launched_at?: number;
  /** What the driver needs to adopt it after a fail-over (pid and directory for local instances). */
  handle?: InstanceHandle;
  /** The worker's node id and address: from its ready line (local driver), then its announcement. */
  node_id?: string;
  address?: string;
  /** When the worker announced its instance id through the cluster (contextualization). */
  announced_at?: number;
  /** TERMINATING: when the terminate was last asked of the driver. */
  terminate_asked_at?: number;
}

export interface ProvisionerState {
  /** False after terminate_all, until enable: requests are then REJECTED. */
  enabled: boolean;
  launches: Record<string, LaunchRecord>;
  /** In creation order. */
  instances: Record<string, InstanceRecord>;
  /** Ref keys (`type/id`) told about every change of every instance. */
  subscribers: string[];
  sites: Record<string, SiteConfig>;
}

export function emptyProvisionerState(): ProvisionerState {
  return { enabled: true, launches: {}, instances: {}, subscribers: [], sites: {} };
}

/** An instance as callers and subscribers see it: its record joined with its launch. */
export interface InstanceView {
  instance_id: string;
  launch_id: string;
  state: InstanceState;
  state_desc?: StateDesc;
  state_detail?: string;
  deployable_type: string;
  site: string;
  vars: Record<string, string>;
  node_id?: string;
  address?: string;
  created_at: number;
  state_changed_at: number;
  launched_at?: number;
}

export function viewOf(record: InstanceRecord, launch: LaunchRecord | undefined): InstanceView {
  const view: InstanceView = {
    instance_id: record.instance_id,
    launch_id: record.launch_id,
    state: record.state,
    deployable_type: launch?.deployable_type ?? '',
    site: launch?.site ?? '',
    vars: launch?.vars ?? {},
    created_at: record.created_at,
    state_changed_at: record.state_changed_at,
  };
  if (record.state_desc !== undefined) view.state_desc = record.state_desc;
  if (record.state_detail !== undefined) view.state_detail = record.state_detail;
  if (record.node_id !== undefined) view.node_id = record.node_id;
  if (record.address !== undefined) view.address = record.address;
  if (record.launched_at !== undefined) view.launched_at = record.launched_at;
  return view;
}

/** An IaaS call for the shell to start once the turn's step is computed. */
export type ProvisionerEffect =
  | { kind: 'launch'; launch_id: string; site: string; instance_ids: string[]; attempt: number }
  | { kind: 'terminate'; site: string; instance_ids: string[] };

/** Own entries only: ids such as "constructor" must not find Object.prototype's members. */
export function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Fields a transition may set besides the state. */
export type RecordPatch = Partial<Omit<InstanceRecord, 'instance_id' | 'launch_id' | 'state' | 'created_at' | 'state_changed_at'>>;

/**
 * A state being changed by one step. Reads see the writes made so far; the base state is never
 * modified, so a step that throws leaves it as it was.
 */
export class Draft {
  readonly state: ProvisionerState;
  /** Every state change, in order (an instance that changed twice is in it twice). */
  readonly changes: InstanceView[] = [];
  readonly effects: ProvisionerEffect[] = [];
  private instancesCopied = false;
  private launchesCopied = false;

  constructor(
    base: ProvisionerState,
    readonly now: number,
  ) {
    this.state = { ...base };
  }

  instance(id: string): InstanceRecord | undefined {
    return own(this.state.instances, id);
  }

  launch(id: string): LaunchRecord | undefined {
    return own(this.state.launches, id);
  }

  /** The instances of a launch, in index order. */
  instancesOf(launch: LaunchRecord): InstanceRecord[] {
    const out: InstanceRecord[] = [];
    for (let i = 0; i < launch.count; i++) {
      const r = this.instance(instanceIdOf(launch.launch_id, i));
      if (r) out.push(r);
    }
    return out;
  }

  /** Adds a new record in one of the initial states (a change like any other). */
  create(record: InstanceRecord): void {
    this.writeInstance(record);
    this.changes.push(viewOf(record, this.launch(record.launch_id)));
  }

  /** Moves a record to `to` (checked against the lifecycle) with `patch`; returns the new record. */
  move(record: InstanceRecord, to: InstanceState, desc?: StateDesc, detail?: string, patch: RecordPatch = {}): InstanceRecord {
    checkTransition(record.instance_id, record.state, to);
    const next: InstanceRecord = { ...record, ...patch, state: to, state_changed_at: this.now };
    delete next.state_desc;
    delete next.state_detail;
    if (desc !== undefined) next.state_desc = desc;
    if (detail !== undefined) next.state_detail = detail;
    if (to !== 'TERMINATING') delete next.terminate_asked_at;
    this.writeInstance(next);
    this.changes.push(viewOf(next, this.launch(next.launch_id)));
    return next;
  }

  /** Changes fields other than the state (no change is published). */
  patch(record: InstanceRecord, patch: RecordPatch): InstanceRecord {
    const next: InstanceRecord = { ...record, ...patch };
    this.writeInstance(next);
    return next;
  }

  removeInstance(id: string): void {
    this.copyInstances();
    delete this.state.instances[id];
  }

  putLaunch(launch: LaunchRecord): void {
    if (!this.launchesCopied) {
      this.state.launches = { ...this.state.launches };
      this.launchesCopied = true;
    }
    this.state.launches[launch.launch_id] = launch;
  }

  removeLaunch(id: string): void {
    if (!this.launchesCopied) {
      this.state.launches = { ...this.state.launches };
      this.launchesCopied = true;
    }
    delete this.state.launches[id];
  }

  effect(effect: ProvisionerEffect): void {
    this.effects.push(effect);
  }

  /** One terminate effect per site for the given records. */
  terminateEffects(records: readonly InstanceRecord[]): void {
    const bySite = new Map<string, string[]>();
    for (const r of records) {
      const site = this.launch(r.launch_id)?.site;
      if (site === undefined) continue;
      let ids = bySite.get(site);
      if (!ids) bySite.set(site, (ids = []));
      ids.push(r.instance_id);
    }
    for (const [site, ids] of bySite) this.effect({ kind: 'terminate', site, instance_ids: ids });
  }

  private copyInstances(): void {
    if (!this.instancesCopied) {
      this.state.instances = { ...this.state.instances };
      this.instancesCopied = true;
    }
  }

  private writeInstance(record: InstanceRecord): void {
    this.copyInstances();
    this.state.instances[record.instance_id] = record;
  }
}

/** The id of a launch's `index`-th instance: derived, so a retried provision names the same instances. */
export function instanceIdOf(launchId: string, index: number): string {
  return `${launchId}-${index}`;
}

/** Whether a record's instance may still be alive at the IaaS. */
export function isLive(record: InstanceRecord): boolean {
  return !isFinalState(record.state);
}
