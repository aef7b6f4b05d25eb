/**
 * The contract between the provisioner and an IaaS: launch instances, terminate them, list what runs,
 * and take over instances an earlier incarnation of the driver launched. Implementations:
 * driver-local.ts (real `cei node --role=worker` processes on this machine) and driver-sim.ts
 * (simulated instances, for tests of the control logic and for scale).
 *
 * A driver is the IaaS's view, not the provisioner's: it never decides RUNNING from cluster
 * membership, never retries, and keeps no durable state of its own beyond what the IaaS itself
 * holds (processes and their directories, or the simulated cloud). The provisioner persists each
 * instance's `handle` so that a driver created after a fail-over can `adopt` it.
 */
import { InvalidArgumentError } from '../errors.js';

export type SiteType = 'local' | 'sim';
export const SITE_TYPES: readonly SiteType[] = ['local', 'sim'];

/**
 * Driver-level instance states. Transitions:
 *
 *   pending -> started -> running
 *   pending | started | running -> terminated   (terminate(), or the instance stopped by itself)
 *   pending | started -> failed                 (it never booted, or not within the start timeout)
 *
 * `started`: the instance is up (a local worker printed its ready line). `running`: contextualized;
 * only drivers that can observe it report it (sim). For local instances the provisioner decides
 * RUNNING from cluster membership: the worker joined and announced its instance id.
 * `terminated` and `failed` are final.
 */
export type DriverInstanceState = 'pending' | 'started' | 'running' | 'terminated' | 'failed';

/** Why an instance is `terminated` or `failed`; the provisioner maps it onto its `state_desc`. */
export type DriverReason =
  /** It failed to boot: a sim boot failure, or a local process that exited before it was ready. */
  | 'IAAS_BOOT_FAILED'
  /** It was not started within the driver's start timeout (the driver then stopped it). */
  | 'IAAS_TIMEOUT'
  /** terminate() ended it. */
  | 'TERMINATE_REQUESTED'
  /** It stopped by itself after it had started (a local process that exited or was killed). */
  | 'EXITED'
  /** The driver has no trace of it (terminate or adopt of an id it cannot find). */
  | 'NOT_FOUND';

export function isFinal(state: DriverInstanceState): boolean {
  return state === 'terminated' || state === 'failed';
}

/**
 * What the provisioner persists per instance and hands back to `adopt` after a fail-over. Plain
 * JSON. Local instances carry their process id and directory; simulated ones only their id.
 */
export interface InstanceHandle {
  readonly instanceId: string;
  readonly pid?: number;
  readonly dir?: string;
}

export interface DriverInstance {
  readonly instanceId: string;
  readonly state: DriverInstanceState;
  /** Set once the instance is terminated or failed. */
  readonly reason?: DriverReason;
  /** A human-readable account of the reason (exit code, the tail of a worker's log ...). */
  readonly detail?: string;
  /** When it was launched, on the driver's clock (ms since the epoch). */
  readonly launchedAt: number;
  /** When it reached its current state, on the driver's clock. */
  readonly since: number;
  readonly handle: InstanceHandle;
  /** The worker's node id and gRPC address, once a local instance printed its ready line. */
  readonly nodeId?: string;
  readonly address?: string;
}

/**
 * The launch parameters a deployable type resolved to at one site (the `params` of the registry's
 * lookup, proto/cei/v1/dtrs.proto). Each driver validates them with its own schema and rejects
 * unknown keys: local `{args, env, slots}`, sim `{slots, boot_latency_ms, failure_rate}`.
 */
export type LaunchParams = Readonly<Record<string, unknown>>;

export interface LaunchRequest {
  /** The ids to launch; chosen by the provisioner, so a retried launch names the same ones. */
  readonly instanceIds: readonly string[];
  readonly params: LaunchParams;
  /** Cluster addresses (HOST:PORT) the instances join. */
  readonly seeds: readonly string[];
}

export type DriverListener = (instance: DriverInstance) => void;

export interface IaasDriver {
  readonly siteType: SiteType;

  /**
   * Launches every id of the request that the IaaS does not hold yet and resolves with all of them,
   * new and existing, in request order. Idempotent by instance id: an id that exists (in any state,
   * including a final one the driver still remembers) is returned as it is, never launched twice.
   * Capacity is checked for the whole request: past it nothing is launched and the call rejects
   * with IaasFullError. A bad request rejects with InvalidArgumentError and launches nothing.
   */
  launch(request: LaunchRequest): Promise<DriverInstance[]>;

  /**
   * Terminates the given instances and resolves once each is gone (local: its process has exited
   * and its directory is removed). Idempotent: an unknown or already terminated id resolves as
   * terminated. Every id is attempted even when one fails; the first failure is then the
   * rejection (IaasTimeoutError when a process outlives SIGKILL), and calling again is safe.
   */
  terminate(instanceIds: readonly string[]): Promise<DriverInstance[]>;

  /**
   * Every instance the IaaS holds for this driver's site, including ones no record knows (zombies)
   * and final ones still remembered. Freshly observed: a local driver checks each process now.
   */
  list(): Promise<DriverInstance[]>;

  /**
   * Takes over instances an earlier incarnation of the driver launched, from the handles the
   * provisioner persisted. Resolves with each one's current state, in order; an instance that is
   * gone is reported terminated (NOT_FOUND when the IaaS has no trace of it). Adopting an instance
   * this driver already tracks is a no-op.
   */
  adopt(handles: readonly InstanceHandle[]): Promise<DriverInstance[]>;

  /**
   * Calls `listener` on each state change the driver observes, after the change. Best effort and
   * possibly late: `list()` is the truth, so the provisioner reconciles with it regardless. The
   * listener must not throw (a throw is logged and ignored). Returns the unsubscribe function.
   */
  watch(listener: DriverListener): () => void;

  /**
   * Stops the driver's own timers and listeners. Instances are left as they are: they belong to
   * the IaaS and outlive the driver (a later driver adopts them). Further calls reject.
   */
  close(): Promise<void>;
}

/** How a driver reports an id it has no trace of (terminate or adopt of an unknown instance). */
export function notFoundInstance(instanceId: string, now: number): DriverInstance {
  return {
    instanceId,
    state: 'terminated',
    reason: 'NOT_FOUND',
    detail: 'the IaaS has no such instance',
    launchedAt: now,
    since: now,
    handle: { instanceId },
  };
}

/** Instance ids name directories and appear on command lines: one safe path component. */
export const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The address form `cei node --join` accepts (src/node.ts). */
const ADDRESS = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Throws InvalidArgumentError for a request no driver can carry out. */
export function validateLaunchRequest(request: LaunchRequest): void {
  if (!Array.isArray(request.instanceIds) || request.instanceIds.length === 0) {
    throw new InvalidArgumentError('launch needs at least one instance id');
  }
  const seen = new Set<string>();
  for (const id of request.instanceIds) {
    validateInstanceId(id);
    if (seen.has(id)) throw new InvalidArgumentError(`instance id "${id}" appears twice in one launch`);
    seen.add(id);
  }
  if (request.params === null || typeof request.params !== 'object' || Array.isArray(request.params)) {
    throw new InvalidArgumentError('launch params must be an object');
  }
  if (!Array.isArray(request.seeds)) throw new InvalidArgumentError('launch seeds must be a list of HOST:PORT addresses');
  for (const seed of request.seeds) {
    const m = typeof seed === 'string' ? ADDRESS.exec(seed) : null;
    if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError(`launch seed ${JSON.stringify(seed)} is not HOST:PORT`);
  }
}

export function validateInstanceId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !INSTANCE_ID.test(id)) {
    throw new InvalidArgumentError(
      `instance id ${JSON.stringify(id)} is invalid: 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
}
