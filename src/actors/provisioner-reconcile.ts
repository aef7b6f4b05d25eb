/**
 * How the provisioner's records follow the IaaS and the cluster: pure functions of the records, what
 * a driver reports, which worker nodes are up, and the time. The actor shell gathers those inputs
 * (driver listings, the membership) and carries out the effects these functions ask for.
 *
 * observe   applies what a driver reports about some instances (a launch call's result, a watch
 *           event, adopted handles): pending -> PENDING, started -> STARTED, running -> RUNNING,
 *           failed -> FAILED with the driver's reason, terminated -> TERMINATED (NODE_DISAPPEARED
 *           unless a terminate was asked for). A driver instance alive while its record is final
 *           is a zombie and is terminated again.
 * reconcile the periodic pass over a site's complete listing and the membership:
 *           - a launched record (PENDING, STARTED, RUNNING, RUNNING_FAILED) the driver no longer
 *             lists becomes TERMINATED with NODE_DISAPPEARED (a TERMINATING one simply TERMINATED);
 *           - an instance the driver runs that no record knows (a zombie) is destroyed;
 *           - an announced worker that is up in the membership makes its record RUNNING;
 *           - PENDING or STARTED longer than the ready timeout becomes RUNNING_FAILED;
 *           - launches to retry (ERROR_RETRYING past its backoff; REQUESTED with no launch call in
 *             flight, e.g. after a fail-over) and terminations to ask again are issued;
 *           - final records past their retention are forgotten.
 *
 * Only a complete listing can show that an instance vanished or that one is a zombie: a partial
 * observation (observe) never concludes either from an absence.
 */
import type { DriverInstance } from '../iaas/driver.js';
import type { ProvisionerOptions } from './provisioner-options.js';
import { Draft, instanceIdOf, isLive, type InstanceRecord, type LaunchRecord, type RecordPatch } from './provisioner-records.js';
import { isFinalState, isLaunchedState, isUnlaunchedState, type StateDesc } from './provisioner-states.js';

export type ReconcileOptions = Pick<
  ProvisionerOptions,
  'readyTimeoutMs' | 'launchRetryInitialMs' | 'launchRetryMaxMs' | 'launchMaxAttempts' | 'terminateRetryMs' | 'retainFinalMs'
>;

/** What a step may know besides the state: the time and the cluster's worker nodes that are up. */
export interface StepEnv {
  now: number;
  options: ReconcileOptions;
  /** Ids of the cluster members that are `up` now. */
  membersUp: ReadonlySet<string>;
}

/** IaaS calls the shell has started and not yet heard back from (memory only: lost with the node). */
export interface InFlight {
  /** Launch ids with a launch call in flight. */
  launches: ReadonlySet<string>;
  /** Instance ids with a terminate call in flight. */
  terminates: ReadonlySet<string>;
}

export const NOTHING_IN_FLIGHT: InFlight = { launches: new Set(), terminates: new Set() };

/** Delay before retry number `attempt` (1-based): doubling from the initial delay, capped; no jitter. */
export function retryDelay(attempt: number, options: ReconcileOptions): number {
  return Math.min(options.launchRetryMaxMs, options.launchRetryInitialMs * 2 ** Math.max(0, attempt - 1));
}

const ALIVE = new Set(['pending', 'started', 'running']);

function isAlive(instance: DriverInstance): boolean {
  return ALIVE.has(instance.state);
}

const DRIVER_FAILURES: ReadonlySet<string> = new Set(['IAAS_BOOT_FAILED', 'IAAS_TIMEOUT']);

function describe(instance: DriverInstance): string {
  return instance.detail ? `${instance.reason ?? instance.state}: ${instance.detail}` : (instance.reason ?? instance.state);
}

/** What the driver adds to a record besides its state: the handle, and the worker's node once known. */
function driverPatch(record: InstanceRecord, instance: DriverInstance): RecordPatch {
  const patch: RecordPatch = {};
  const handle = instance.handle;
  if (JSON.stringify(record.handle) !== JSON.stringify(handle)) patch.handle = handle;
  if (instance.nodeId !== undefined && record.node_id === undefined) patch.node_id = instance.nodeId;
  if (instance.address !== undefined && record.address === undefined) patch.address = instance.address;
  return patch;
}

/** Applies one driver report to a live record of its site. */
function applyDriverState(d: Draft, record: InstanceRecord, instance: DriverInstance, env: StepEnv): void {
  if (record.state === 'REQUESTING') return;
  const patch = driverPatch(record, instance);
  const launched = record.launched_at ?? env.now;
  let r = record;
  switch (instance.state) {
    case 'pending':
      if (isUnlaunchedState(r.state)) r = d.move(r, 'PENDING', undefined, undefined, { ...patch, launched_at: launched });
      break;
    case 'started':
      if (isUnlaunchedState(r.state) || r.state === 'PENDING') r = d.move(r, 'STARTED', undefined, undefined, { ...patch, launched_at: launched });
      break;
    case 'running':
      if (isUnlaunchedState(r.state) || r.state === 'PENDING' || r.state === 'STARTED') r = d.move(r, 'RUNNING', undefined, undefined, { ...patch, launched_at: launched });
      break;
    case 'terminated':
      if (r.state === 'TERMINATING') r = d.move(r, 'TERMINATED', 'TERMINATE_REQUESTED', undefined, patch);
      else r = d.move(r, 'TERMINATED', 'NODE_DISAPPEARED', describe(instance), patch);
      return;
    case 'failed':
      if (r.state === 'TERMINATING') r = d.move(r, 'TERMINATED', 'TERMINATE_REQUESTED', undefined, patch);
      else if (r.state === 'RUNNING') r = d.move(r, 'TERMINATED', 'NODE_DISAPPEARED', describe(instance), patch);
      else {
        const desc = (DRIVER_FAILURES.has(instance.reason ?? '') ? instance.reason : 'IAAS_ERROR') as StateDesc;
        r = d.move(r, 'FAILED', desc, describe(instance), patch);
      }
      return;
  }
  if (r === record && Object.keys(patch).length > 0) r = d.patch(r, patch);
  promote(d, r, env);
}

/** An announced worker that is up in the membership is contextualized: RUNNING. */
function promote(d: Draft, record: InstanceRecord, env: StepEnv): void {
  if (record.announced_at === undefined || record.node_id === undefined || !env.membersUp.has(record.node_id)) return;
  if (record.state === 'REQUESTED' || record.state === 'ERROR_RETRYING' || record.state === 'PENDING' || record.state === 'STARTED') {
    d.move(record, 'RUNNING', undefined, undefined, { launched_at: record.launched_at ?? env.now });
  }
}

/**
 * Applies what `site`'s driver reports about `instances`. With `complete`, the list is everything
 * the driver holds: absences then mean that an instance vanished, and unknown live instances are
 * zombies. Asks (as effects) for every zombie found to be terminated, except those in flight.
 */
export function observe(d: Draft, site: string, instances: readonly DriverInstance[], env: StepEnv, complete: boolean, inFlight: InFlight = NOTHING_IN_FLIGHT): void {
  const seen = complete ? new Set<string>() : undefined;
  const zombies: string[] = [];
  for (const instance of instances) {
    seen?.add(instance.instanceId);
    const record = d.instance(instance.instanceId);
    const recordSite = record ? d.launch(record.launch_id)?.site : undefined;
    if (!record) {
      if (complete && isAlive(instance)) zombies.push(instance.instanceId);
      continue;
    }
    // The same id at another site's driver (two sites sharing an instance directory): not ours to judge.
    if (recordSite !== site) continue;
    if (isFinalState(record.state)) {
      if (isAlive(instance)) zombies.push(instance.instanceId);
      continue;
    }
    applyDriverState(d, record, instance, env);
  }
  if (seen) {
    for (const record of Object.values(d.state.instances)) {
      if (seen.has(record.instance_id) || d.launch(record.launch_id)?.site !== site) continue;
      if (isLaunchedState(record.state)) d.move(record, 'TERMINATED', 'NODE_DISAPPEARED', 'the IaaS no longer lists it');
      else if (record.state === 'TERMINATING') d.move(record, 'TERMINATED', 'TERMINATE_REQUESTED');
    }
  }
  const toKill = zombies.filter((id) => !inFlight.terminates.has(id));
  if (toKill.length > 0) d.effect({ kind: 'terminate', site, instance_ids: toKill });
}

/** A worker announced its instance id through the cluster. False when no record knows the id. */
export function announce(d: Draft, instanceId: string, nodeId: string, address: string, env: StepEnv): boolean {
  const record = d.instance(instanceId);
  if (!record) return false;
  if (isFinalState(record.state)) return true;
  const patch: RecordPatch = { node_id: nodeId, announced_at: env.now };
  if (address) patch.address = address;
  promote(d, d.patch(record, patch), env);
  return true;
}

export interface ReconcileInput {
  /** Each site's complete listing; a site whose driver could not be listed is absent. */
  listings: ReadonlyMap<string, readonly DriverInstance[]>;
  inFlight: InFlight;
}

/** The periodic pass (see the top of this file). */
export function reconcile(d: Draft, input: ReconcileInput, env: StepEnv): void {
  for (const [site, instances] of input.listings) observe(d, site, instances, env, true, input.inFlight);
  const { now, options } = env;
  for (const record of Object.values(d.state.instances)) {
    if (!isLive(record)) continue;
    promote(d, record, env);
    const r = d.instance(record.instance_id)!;
    if ((r.state === 'PENDING' || r.state === 'STARTED') && r.launched_at !== undefined && now - r.launched_at >= options.readyTimeoutMs) {
      d.move(r, 'RUNNING_FAILED', 'READY_TIMEOUT', `not RUNNING within ${options.readyTimeoutMs} ms of its launch`);
    }
  }
  retryLaunches(d, input.inFlight, env);
  retryTerminations(d, input.inFlight, env);
  forget(d, env);
}

/** Launches whose REQUESTING instances are due for a (new) lookup, in creation order. */
export function dueLookups(state: Draft['state'], now: number): string[] {
  const due: string[] = [];
  for (const launch of Object.values(state.launches)) {
    if (launch.retry_at !== undefined && launch.retry_at > now) continue;
    if (hasState(state, launch, 'REQUESTING')) due.push(launch.launch_id);
  }
  return due;
}

function hasState(state: Draft['state'], launch: LaunchRecord, wanted: InstanceRecord['state']): boolean {
  for (let i = 0; i < launch.count; i++) {
    const id = instanceIdOf(launch.launch_id, i);
    if (Object.hasOwn(state.instances, id) && state.instances[id]!.state === wanted) return true;
  }
  return false;
}

/**
 * Issues a new launch call for every launch that needs one and has none in flight: one whose
 * ERROR_RETRYING instances are past their backoff (they go back to REQUESTED), or one with REQUESTED
 * instances and no call in flight (the call was lost with the node that made it).
 */
export function retryLaunches(d: Draft, inFlight: InFlight, env: StepEnv): void {
  for (const launch of Object.values(d.state.launches)) {
    if (inFlight.launches.has(launch.launch_id) || launch.params === undefined) continue;
    const records = d.instancesOf(launch);
    const retrying = records.filter((r) => r.state === 'ERROR_RETRYING');
    if (retrying.length > 0 && (launch.retry_at === undefined || launch.retry_at <= env.now)) {
      for (const r of retrying) d.move(r, 'REQUESTED');
    } else if (!records.some((r) => r.state === 'REQUESTED')) {
      continue;
    }
    const ids = d.instancesOf(launch).filter((r) => r.state === 'REQUESTED').map((r) => r.instance_id);
    if (ids.length === 0) continue;
    const next: LaunchRecord = { ...launch, attempt: launch.attempt + 1 };
    delete next.retry_at;
    d.putLaunch(next);
    d.effect({ kind: 'launch', launch_id: launch.launch_id, site: launch.site, instance_ids: ids, attempt: next.attempt });
  }
}

/** Asks again for terminations that failed or were lost, once `terminateRetryMs` passed since the last ask. */
export function retryTerminations(d: Draft, inFlight: InFlight, env: StepEnv): void {
  const again: InstanceRecord[] = [];
  for (const record of Object.values(d.state.instances)) {
    if (record.state !== 'TERMINATING' || inFlight.terminates.has(record.instance_id)) continue;
    if (record.terminate_asked_at !== undefined && env.now - record.terminate_asked_at < env.options.terminateRetryMs) continue;
    again.push(d.patch(record, { terminate_asked_at: env.now }));
  }
  d.terminateEffects(again);
}

/** Forgets final records past their retention, and launches none of whose instances are left. */
function forget(d: Draft, env: StepEnv): void {
  const cutoff = env.now - env.options.retainFinalMs;
  for (const record of Object.values(d.state.instances)) {
    if (isFinalState(record.state) && record.state_changed_at <= cutoff) d.removeInstance(record.instance_id);
  }
  for (const launch of Object.values(d.state.launches)) {
    if (d.instancesOf(launch).length === 0) d.removeLaunch(launch.launch_id);
  }
}
