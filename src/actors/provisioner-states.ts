/**
 * The lifecycle of one instance as the provisioner records it (the original EPU's InstanceState),
 * with the reasons a record gives for where it ended up. The transitions are a table; moving a
 * record along an edge the table lacks is a bug in the provisioner and throws
 * IllegalTransitionError.
 *
 *   REQUESTING      accepted; its launch spec is not resolved yet (the DTRS lookup is retried
 *                   while the registry is out of reach: state_desc DTRS_UNAVAILABLE)
 *   REQUESTED       spec resolved; the launch call to the IaaS is in flight (or about to be retried)
 *   ERROR_RETRYING  the IaaS refused the launch for a passing reason; retried after a backoff
 *   PENDING         the IaaS holds the instance; it is booting
 *   STARTED         the IaaS reports it up (a local worker printed its ready line)
 *   RUNNING         contextualized: the worker joined the cluster and announced its instance id
 *                   (a sim instance: the simulated cloud says so)
 *   RUNNING_FAILED  it did not reach RUNNING within the ready timeout; it is left as it is (for
 *                   its logs) until someone terminates it: EPU management replaces such instances
 *   TERMINATING     a terminate was asked for; the IaaS call is in flight (or retried)
 *   TERMINATED      gone: terminated on request, or it vanished (NODE_DISAPPEARED)
 *   FAILED          never became usable: DTRS_LOOKUP_FAILED, IAAS_FULL, IAAS_BOOT_FAILED ...
 *   REJECTED        requested while the provisioner was disabled (after terminate_all)
 *
 *   REQUESTING -> REQUESTED -> PENDING -> STARTED -> RUNNING -> TERMINATING -> TERMINATED
 *   REQUESTED <-> ERROR_RETRYING (the only way back)
 *   REQUESTED | ERROR_RETRYING | PENDING may skip ahead (a late observation: the IaaS already
 *   started it, or the worker announced itself before the launch call returned)
 *   PENDING | STARTED -> RUNNING_FAILED (ready timeout)
 *   any live state -> TERMINATED (vanished) or FAILED (launch or boot failed)
 *   (new) -> REQUESTING, or REJECTED while disabled
 * TERMINATED, FAILED and REJECTED are final.
 */
import { CeiError } from '../errors.js';

export type InstanceState =
  | 'REQUESTING'
  | 'REQUESTED'
  | 'ERROR_RETRYING'
  | 'PENDING'
  | 'STARTED'
  | 'RUNNING'
  | 'RUNNING_FAILED'
  | 'TERMINATING'
  | 'TERMINATED'
  | 'FAILED'
  | 'REJECTED';

/** Every state, in lifecycle order. */
export const INSTANCE_STATES: readonly InstanceState[] = Object.freeze([
  'REQUESTING',
  'REQUESTED',
  'ERROR_RETRYING',
  'PENDING',
  'STARTED',
  'RUNNING',
  'RUNNING_FAILED',
  'TERMINATING',
  'TERMINATED',
  'FAILED',
  'REJECTED',
]);

/**
 * Why a record is where it is (`state_desc`), set on failures and retries. A record's
 * `state_detail` adds the human-readable account (the driver's message, the exit code ...).
 */
export type StateDesc =
  /** REQUESTING: the registry could not be asked (out of reach, timed out); retried. */
  | 'DTRS_UNAVAILABLE'
  /** FAILED: the registry refused the lookup (unknown DT or site, a missing variable). */
  | 'DTRS_LOOKUP_FAILED'
  /** FAILED: the site's driver could not be created from its settings. */
  | 'SITE_INVALID'
  /** FAILED: the site is at capacity. */
  | 'IAAS_FULL'
  /** ERROR_RETRYING, or FAILED once retries are spent: the IaaS did not answer in time. */
  | 'IAAS_TIMEOUT'
  /** ERROR_RETRYING, or FAILED once retries are spent: the IaaS refused for a passing reason. */
  | 'IAAS_UNAVAILABLE'
  /** FAILED: the IaaS refused the launch parameters. */
  | 'IAAS_BAD_REQUEST'
  /** FAILED: the instance never booted. */
  | 'IAAS_BOOT_FAILED'
  /** FAILED: the IaaS failed the launch for another reason (see state_detail). */
  | 'IAAS_ERROR'
  /** RUNNING_FAILED: not RUNNING within the ready timeout. */
  | 'READY_TIMEOUT'
  /** TERMINATED: the IaaS no longer has it, or it stopped by itself, without a terminate. */
  | 'NODE_DISAPPEARED'
  /** TERMINATED: terminated on request (terminate_nodes or terminate_all). */
  | 'TERMINATE_REQUESTED'
  /** REJECTED: requested while the provisioner was disabled. */
  | 'PROVISIONER_DISABLED';

const FINAL: ReadonlySet<InstanceState> = new Set(['TERMINATED', 'FAILED', 'REJECTED']);

/** Final: nothing more happens to the record. */
export function isFinalState(state: InstanceState): boolean {
  return FINAL.has(state);
}

/** The states in which the IaaS may hold a live instance for the record (so it can vanish). */
const LAUNCHED: ReadonlySet<InstanceState> = new Set(['PENDING', 'STARTED', 'RUNNING', 'RUNNING_FAILED']);

export function isLaunchedState(state: InstanceState): boolean {
  return LAUNCHED.has(state);
}

/** Before the IaaS acknowledged the launch. */
const UNLAUNCHED: ReadonlySet<InstanceState> = new Set(['REQUESTING', 'REQUESTED', 'ERROR_RETRYING']);

export function isUnlaunchedState(state: InstanceState): boolean {
  return UNLAUNCHED.has(state);
}

const EDGES: Record<InstanceState, readonly InstanceState[]> = {
  REQUESTING: ['REQUESTED', 'FAILED', 'TERMINATED'],
  REQUESTED: ['ERROR_RETRYING', 'PENDING', 'STARTED', 'RUNNING', 'TERMINATING', 'TERMINATED', 'FAILED'],
  ERROR_RETRYING: ['REQUESTED', 'PENDING', 'STARTED', 'RUNNING', 'TERMINATING', 'TERMINATED', 'FAILED'],
  PENDING: ['STARTED', 'RUNNING', 'RUNNING_FAILED', 'TERMINATING', 'TERMINATED', 'FAILED'],
  STARTED: ['RUNNING', 'RUNNING_FAILED', 'TERMINATING', 'TERMINATED', 'FAILED'],
  RUNNING: ['TERMINATING', 'TERMINATED'],
  RUNNING_FAILED: ['TERMINATING', 'TERMINATED', 'FAILED'],
  TERMINATING: ['TERMINATED'],
  TERMINATED: [],
  FAILED: [],
  REJECTED: [],
};

/** The states a new record may start in. */
export const INITIAL_STATES: readonly InstanceState[] = Object.freeze(['REQUESTING', 'REJECTED']);

export function canTransition(from: InstanceState, to: InstanceState): boolean {
  return EDGES[from].includes(to);
}

/** Thrown when the provisioner would move a record along an edge the lifecycle lacks: a bug. */
export class IllegalTransitionError extends CeiError {
  override name = 'IllegalTransitionError';
  readonly instanceId: string;
  readonly from: InstanceState;
  readonly to: InstanceState;
  constructor(instanceId: string, from: InstanceState, to: InstanceState) {
    super('INTERNAL', `instance ${instanceId}: illegal transition ${from} -> ${to}`);
    this.instanceId = instanceId;
    this.from = from;
    this.to = to;
  }
}

/** Throws IllegalTransitionError unless `from -> to` is an edge of the lifecycle. */
export function checkTransition(instanceId: string, from: InstanceState, to: InstanceState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(instanceId, from, to);
}
