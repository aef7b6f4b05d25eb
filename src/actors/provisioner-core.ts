/**
 * The provisioner's requests and the results of its IaaS calls, as pure functions over a Draft
 * (./provisioner-records.ts): each reads the message and the time, changes records, and leaves the
 * changes to publish and the IaaS calls to make in the draft. A refusal throws the CeiError the
 * caller should see, and the draft is then dropped, so nothing changed.
 *
 * Idempotence: a provision names its launch, and the launch names its instances
 * (`<launch_id>-<index>`), so a provision sent twice (a caller's retry, a replayed message) finds
 * its launch and answers with the instances as they are, launching nothing. The same launch id
 * with other parameters is ALREADY_EXISTS. The driver is idempotent by instance id in turn, so a
 * launch call repeated after a fail-over starts nothing twice.
 */
import { CeiError } from '../errors.js';
import type { LaunchSpec } from './dtrs.js';
import type {
  CallError,
  EnableReply,
  MessageOf,
  NodesReply,
  ProvisionerDump,
  ProvisionReply,
  SubscribeReply,
  TerminateAllReply,
} from './provisioner-protocol.js';
import { Draft, instanceIdOf, viewOf, type InstanceRecord, type LaunchRecord, type ProvisionerState } from './provisioner-records.js';
import { observe, retryDelay, type StepEnv } from './provisioner-reconcile.js';
import { INSTANCE_STATES, isFinalState, type StateDesc } from './provisioner-states.js';

/** JSON with sorted keys: equal for equal values whatever order their fields came in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

export interface Admission {
  reply: ProvisionReply;
  /** The launch is new and its spec must be resolved (ask the registry, then call resolveLaunch). */
  lookup: boolean;
}

/**
 * Records a provision: a new launch's instances in REQUESTING (REJECTED while disabled), or the
 * existing launch's instances as they are.
 */
export function admitProvision(d: Draft, msg: MessageOf<'provision'>): Admission {
  const existing = d.launch(msg.launch_id);
  if (existing) {
    const same =
      existing.deployable_type === msg.deployable_type &&
      existing.site === msg.site &&
      existing.count === msg.count &&
      canonical(existing.vars) === canonical(msg.vars);
    if (!same) {
      throw new CeiError(
        'ALREADY_EXISTS',
        `launch "${msg.launch_id}" exists with other parameters (${existing.count} x ${existing.deployable_type} at ${existing.site}); use a new launch id`,
      );
    }
    const added = msg.subscribers.filter((s) => !existing.subscribers.includes(s));
    const launch = added.length > 0 ? { ...existing, subscribers: [...existing.subscribers, ...added] } : existing;
    if (launch !== existing) d.putLaunch(launch);
    return { reply: { created: false, instances: d.instancesOf(launch).map((r) => viewOf(r, launch)) }, lookup: false };
  }
  const launch: LaunchRecord = {
    launch_id: msg.launch_id,
    deployable_type: msg.deployable_type,
    site: msg.site,
    count: msg.count,
    vars: msg.vars,
    subscribers: [...new Set(msg.subscribers)],
    created_at: d.now,
    lookups: 0,
    attempt: 0,
  };
  d.putLaunch(launch);
  for (let i = 0; i < msg.count; i++) {
    const record: InstanceRecord = {
      instance_id: instanceIdOf(msg.launch_id, i),
      launch_id: msg.launch_id,
      state: d.state.enabled ? 'REQUESTING' : 'REJECTED',
      created_at: d.now,
      state_changed_at: d.now,
    };
    if (!d.state.enabled) {
      record.state_desc = 'PROVISIONER_DISABLED';
      record.state_detail = 'the provisioner is disabled (terminate_all); enable it first';
    }
    d.create(record);
  }
  return { reply: { created: true, instances: d.instancesOf(launch).map((r) => viewOf(r, launch)) }, lookup: d.state.enabled };
}

/** How the registry answered a launch's lookup. */
export type LookupOutcome = { ok: true; spec: LaunchSpec } | { ok: false; retryable: boolean; message: string };

/**
 * Applies the registry's answer to a launch's REQUESTING instances: REQUESTED and a launch call
 * (resolved), FAILED with DTRS_LOOKUP_FAILED (refused, or out of reach too many times), or another
 * try after a backoff (out of reach).
 */
export function resolveLaunch(d: Draft, launchId: string, outcome: LookupOutcome, env: StepEnv): void {
  const launch = d.launch(launchId);
  if (!launch) return;
  const waiting = d.instancesOf(launch).filter((r) => r.state === 'REQUESTING');
  if (waiting.length === 0) return;
  const lookups = launch.lookups + 1;
  if (outcome.ok) {
    const { spec } = outcome;
    d.state.sites = { ...d.state.sites, [launch.site]: { type: spec.site_type, settings: { ...spec.site_settings }, version: spec.site_version } };
    const next: LaunchRecord = { ...launch, lookups, params: { ...spec.params }, dt_version: spec.dt_version, attempt: launch.attempt + 1 };
    delete next.retry_at;
    d.putLaunch(next);
    for (const r of waiting) d.move(r, 'REQUESTED');
    d.effect({ kind: 'launch', launch_id: launchId, site: launch.site, instance_ids: waiting.map((r) => r.instance_id), attempt: next.attempt });
    return;
  }
  if (!outcome.retryable || lookups >= env.options.launchMaxAttempts) {
    const why = outcome.retryable ? `the registry was out of reach ${lookups} times; last: ${outcome.message}` : outcome.message;
    d.putLaunch({ ...launch, lookups });
    for (const r of waiting) d.move(r, 'FAILED', 'DTRS_LOOKUP_FAILED', why);
    return;
  }
  d.putLaunch({ ...launch, lookups, retry_at: env.now + retryDelay(lookups, env.options) });
  for (const r of waiting) d.patch(r, { state_desc: 'DTRS_UNAVAILABLE', state_detail: outcome.message });
}

/** What a failed launch call means for its instances. */
function launchFailure(error: CallError): { retry: boolean; desc: StateDesc } {
  if (error.reason === 'IAAS_FULL') return { retry: false, desc: 'IAAS_FULL' };
  if (error.reason === 'SITE_INVALID') return { retry: false, desc: 'SITE_INVALID' };
  if (error.reason === 'IAAS_TIMEOUT') return { retry: true, desc: 'IAAS_TIMEOUT' };
  if (error.reason === 'IAAS_UNAVAILABLE') return { retry: true, desc: 'IAAS_UNAVAILABLE' };
  if (error.code === 'INVALID_ARGUMENT') return { retry: false, desc: 'IAAS_BAD_REQUEST' };
  if (error.retryable) return { retry: true, desc: error.code === 'DEADLINE_EXCEEDED' ? 'IAAS_TIMEOUT' : 'IAAS_UNAVAILABLE' };
  return { retry: false, desc: 'IAAS_ERROR' };
}

/**
 * A launch call's result. Success: what the driver reports is observed. Failure of the current
 * attempt: the REQUESTED instances retry after a backoff (ERROR_RETRYING) while attempts last, or
 * fail. A failure of an older attempt decides nothing (a newer call is in flight or done).
 */
export function applyLaunched(d: Draft, msg: MessageOf<'launched'>, env: StepEnv): void {
  const launch = d.launch(msg.launch_id);
  if (!launch) return;
  if (msg.outcome.ok) {
    observe(d, launch.site, msg.outcome.instances, env, false);
    return;
  }
  if (msg.attempt !== launch.attempt) return;
  const requested = d.instancesOf(launch).filter((r) => r.state === 'REQUESTED');
  if (requested.length === 0) return;
  const { retry, desc } = launchFailure(msg.outcome.error);
  const detail = msg.outcome.error.message;
  if (retry && msg.attempt < env.options.launchMaxAttempts) {
    d.putLaunch({ ...launch, retry_at: env.now + retryDelay(msg.attempt, env.options) });
    for (const r of requested) d.move(r, 'ERROR_RETRYING', desc, detail);
    return;
  }
  const why = retry ? `${detail} (gave up after ${msg.attempt} attempts)` : detail;
  for (const r of requested) d.move(r, 'FAILED', desc, why);
}

/**
 * A terminate call's result: the TERMINATING instances the driver reports gone are TERMINATED. A
 * failure leaves them TERMINATING; the reconciliation asks again after `terminateRetryMs`.
 */
export function applyTerminated(d: Draft, msg: MessageOf<'terminated'>): void {
  if (!msg.outcome.ok) {
    for (const id of msg.instance_ids) {
      const r = d.instance(id);
      if (r?.state === 'TERMINATING') d.patch(r, { state_detail: `terminate failed, will retry: ${msg.outcome.error.message}` });
    }
    return;
  }
  for (const instance of msg.outcome.instances) {
    const r = d.instance(instance.instanceId);
    if (r?.state === 'TERMINATING' && (instance.state === 'terminated' || instance.state === 'failed')) d.move(r, 'TERMINATED', 'TERMINATE_REQUESTED');
  }
}

function nodesReply(d: Draft, ids: readonly string[], unknown: string[]): NodesReply {
  const instances = [];
  for (const id of ids) {
    const r = d.instance(id);
    if (r) instances.push(viewOf(r, d.launch(r.launch_id)));
  }
  return { instances, unknown };
}

/**
 * Starts terminating the given instances: TERMINATING and a terminate call per site; an instance
 * not launched yet (REQUESTING) is TERMINATED at once. Final and TERMINATING ones are left as they
 * are (the reconciliation retries a terminate that failed). Unknown ids are listed in the reply.
 */
export function terminateNodes(d: Draft, ids: readonly string[]): NodesReply {
  const unique = [...new Set(ids)];
  const unknown: string[] = [];
  const toKill: InstanceRecord[] = [];
  for (const id of unique) {
    const r = d.instance(id);
    if (!r) {
      unknown.push(id);
      continue;
    }
    if (isFinalState(r.state) || r.state === 'TERMINATING') continue;
    if (r.state === 'REQUESTING') d.move(r, 'TERMINATED', 'TERMINATE_REQUESTED');
    else toKill.push(d.move(r, 'TERMINATING', undefined, undefined, { terminate_asked_at: d.now }));
  }
  d.terminateEffects(toKill);
  return nodesReply(d, unique, unknown);
}

/** Disables the provisioner (later provisions are REJECTED until enable) and terminates every live instance. */
export function terminateAll(d: Draft): TerminateAllReply {
  d.state.enabled = false;
  const live = Object.values(d.state.instances).filter((r) => !isFinalState(r.state) && r.state !== 'TERMINATING');
  terminateNodes(
    d,
    live.map((r) => r.instance_id),
  );
  return { terminating: live.length };
}

export function enable(d: Draft): EnableReply {
  if (d.state.enabled) return { changed: false };
  d.state.enabled = true;
  return { changed: true };
}

/** The given instances (all when `ids` is empty), in creation order for all, in request order otherwise. */
export function describeNodes(state: ProvisionerState, ids: readonly string[]): NodesReply {
  const d = new Draft(state, 0);
  if (ids.length === 0) return nodesReply(d, Object.keys(state.instances), []);
  const unique = [...new Set(ids)];
  return nodesReply(
    d,
    unique,
    unique.filter((id) => !d.instance(id)),
  );
}

export function dumpState(state: ProvisionerState): ProvisionerDump {
  const d = new Draft(state, 0);
  const counts: Record<string, number> = {};
  for (const s of INSTANCE_STATES) counts[s] = 0;
  for (const r of Object.values(state.instances)) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return {
    enabled: state.enabled,
    subscribers: [...state.subscribers],
    sites: state.sites,
    launches: Object.values(state.launches).map((l) => ({
      launch_id: l.launch_id,
      deployable_type: l.deployable_type,
      site: l.site,
      count: l.count,
      vars: l.vars,
      subscribers: l.subscribers,
      created_at: l.created_at,
      attempt: l.attempt,
      ...(l.retry_at !== undefined && { retry_at: l.retry_at }),
    })),
    instances: Object.values(state.instances).map((r) => viewOf(r, d.launch(r.launch_id))),
    counts,
  };
}

export function subscribe(d: Draft, key: string): SubscribeReply {
  if (d.state.subscribers.includes(key)) return { changed: false };
  d.state.subscribers = [...d.state.subscribers, key];
  return { changed: true };
}

export function unsubscribe(d: Draft, key: string): SubscribeReply {
  if (!d.state.subscribers.includes(key)) return { changed: false };
  d.state.subscribers = d.state.subscribers.filter((s) => s !== key);
  return { changed: true };
}
