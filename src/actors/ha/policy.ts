/**
 * The HA service's policies, pure: given the service's processes, its sensor reading and the time,
 * they say how many processes to schedule, which to terminate, and the service's state. The actor
 * around them (./ha.ts) reads the dispatcher and the sensor and carries the decision out.
 *
 * States of a service, as the original epu's HA policies define them (epu/highavailability/policy.py):
 *
 *   PENDING   the policy has not reached its wanted number and fewer than one process is RUNNING
 *             (npreserving), or it is scaling and has no managed process / a minimum of 0 (sensor)
 *   READY     at least one process (`MINIMUM_READY`) is RUNNING (npreserving) or managed (sensor),
 *             but the policy is still scheduling or terminating
 *   STEADY    npreserving: nothing to schedule or terminate and exactly `preserve_n` RUNNING (or
 *             `preserve_n` is 0); sensor: this decision scales by nothing (also inside the cooldown)
 *   FAILED    sticky: the service stays FAILED until a human reconfigures it. The original never
 *             entered FAILED by itself; cei enters it when `failure_bound` processes in a row failed
 *             (ended FAILED or REJECTED, or were refused by the dispatcher) with none reaching RUNNING
 *             in between, and then schedules nothing more (it still terminates), so a definition
 *             that cannot run does not churn the dispatcher for ever.
 *
 *   PENDING -> READY -> STEADY, STEADY -> READY (a process lost, or a reconfigure), any -> FAILED,
 *   FAILED -> PENDING (reconfigure only).
 *
 * Managed processes are the ones not past RUNNING (the original's `_filter_invalid_processes`):
 * a process TERMINATING, TERMINATED, EXITED, FAILED or REJECTED no longer counts, so one that failed
 * is replaced on the next decision.
 */
import { z } from 'zod';
import { rank, type ProcessState } from '../dispatcher/states.js';

export const HA_STATES = ['PENDING', 'READY', 'STEADY', 'FAILED'] as const;
export type HaState = (typeof HA_STATES)[number];

export const POLICY_NAMES = ['npreserving', 'sensor'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export const SAMPLE_FUNCTIONS = ['average', 'max', 'min'] as const;
export type SampleFunction = (typeof SAMPLE_FUNCTIONS)[number];

/** Processes RUNNING (npreserving) or managed (sensor) for a service to be READY. */
export const MINIMUM_READY = 1;

/** A process the service scheduled, as last observed; `SCHEDULING` until the dispatcher took it. */
export type HaProcessState = ProcessState | 'SCHEDULING';

export interface HaProcess {
  upid: string;
  state: HaProcessState;
}

const Count = z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).min(0, { error: 'must be >= 0' });
const Num = z.number({ error: 'must be a number' }).finite();

export const NPreservingSchema = z.strictObject({ preserve_n: Count });
export type NPreservingParameters = z.infer<typeof NPreservingSchema>;

export const SensorSchema = z
  .strictObject({
    metric: z.string({ error: 'must be a sensor name' }).min(1, { error: 'must be a sensor name (stream:<stream>/<subscription> or <type>/<id>)' }),
    sample_function: z.enum(SAMPLE_FUNCTIONS, { error: `must be one of ${SAMPLE_FUNCTIONS.join(', ')}` }).default('average'),
    /** Seconds of samples the sample function reads. */
    sample_period: Num.positive({ error: 'must be > 0' }).default(60),
    minimum: Count,
    maximum: Count,
    scale_up_threshold: Num,
    scale_up_n: Count.default(1),
    scale_down_threshold: Num,
    scale_down_n: Count.default(1),
    /** Seconds after a scaling action during which the policy does nothing. */
    cooldown_period: Num.min(0, { error: 'must be >= 0' }).default(0),
  })
  .refine((p) => p.minimum <= p.maximum, { error: 'minimum must not exceed maximum', path: ['maximum'] })
  .refine((p) => p.scale_down_threshold <= p.scale_up_threshold, { error: 'must not exceed scale_up_threshold', path: ['scale_down_threshold'] });
export type SensorParameters = z.infer<typeof SensorSchema>;

export type PolicyParameters = NPreservingParameters | SensorParameters;

export const POLICY_SCHEMAS: Record<PolicyName, z.ZodType> = { npreserving: NPreservingSchema, sensor: SensorSchema };

/** A sensor sample: the value read at `time` (ms). */
export interface Sample {
  time: number;
  value: number;
}

export interface PolicyInput {
  /** The service's processes not yet forgotten (any state). */
  processes: readonly HaProcess[];
  /** Sensor samples, oldest first (sensor policy). */
  samples: readonly Sample[];
  now: number;
  /** When the policy last scaled (sensor cooldown); 0 when never. */
  lastScaleAt: number;
  status: HaState;
}

export interface PolicyDecision {
  /** How many new processes to schedule. */
  schedule: number;
  /** Managed processes to terminate. */
  terminate: string[];
  status: HaState;
  /** The sensor value the decision used (sensor policy). */
  value?: number;
  /** The decision scaled (sensor policy: starts the cooldown). */
  scaled: boolean;
}

/** Still counts for the policy: not past RUNNING. */
export function isManaged(state: HaProcessState): boolean {
  return state === 'SCHEDULING' || rank(state) <= rank('RUNNING');
}

/** Which managed processes go first when scaling down: the not yet running, then the oldest (the original took the first). */
function victims(managed: readonly HaProcess[], n: number): string[] {
  const notRunning = managed.filter((p) => p.state !== 'RUNNING');
  const running = managed.filter((p) => p.state === 'RUNNING');
  return [...notRunning, ...running].slice(0, n).map((p) => p.upid);
}

function npreserving(params: NPreservingParameters, input: PolicyInput): PolicyDecision {
  const managed = input.processes.filter((p) => isManaged(p.state));
  const delta = params.preserve_n - managed.length;
  const running = managed.filter((p) => p.state === 'RUNNING').length;
  let status: HaState;
  if (input.status === 'FAILED') status = 'FAILED';
  else if (delta === 0 && (running === params.preserve_n || params.preserve_n === 0)) status = 'STEADY';
  else if (running >= MINIMUM_READY && params.preserve_n > 0) status = 'READY';
  else status = 'PENDING';
  return { schedule: Math.max(0, delta), terminate: delta < 0 ? victims(managed, -delta) : [], status, scaled: false };
}

/** The sample function over the samples of the last `periodMs`; undefined when there are none. */
export function sampleValue(samples: readonly Sample[], fn: SampleFunction, periodMs: number, now: number): number | undefined {
  const values = samples.filter((s) => s.time >= now - periodMs).map((s) => s.value);
  if (values.length === 0) return undefined;
  switch (fn) {
    case 'average':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
  }
}

function sensor(params: SensorParameters, input: PolicyInput): PolicyDecision {
  const managed = input.processes.filter((p) => isManaged(p.state));
  const statusOf = (scaleBy: number): HaState => {
    if (input.status === 'FAILED') return 'FAILED';
    if (scaleBy === 0) return 'STEADY';
    if (managed.length >= MINIMUM_READY && params.minimum > 0) return 'READY';
    return 'PENDING';
  };
  // Inside the cooldown nothing happens, as in the original (a lost process waits for it too).
  if (input.lastScaleAt > 0 && input.now - input.lastScaleAt < params.cooldown_period * 1000) {
    return { schedule: 0, terminate: [], status: statusOf(0), scaled: false };
  }
  const value = sampleValue(input.samples, params.sample_function, params.sample_period * 1000, input.now);
  // No reading: the original read 0 (and so scaled down); cei only keeps within [minimum, maximum].
  let scaleBy = 0;
  if (value !== undefined && value > params.scale_up_threshold) scaleBy = params.scale_up_n;
  else if (value !== undefined && value < params.scale_down_threshold) scaleBy = -params.scale_down_n;
  const wanted = Math.min(Math.max(managed.length + scaleBy, params.minimum), params.maximum);
  scaleBy = wanted - managed.length;
  return {
    schedule: Math.max(0, scaleBy),
    terminate: scaleBy < 0 ? victims(managed, -scaleBy) : [],
    status: statusOf(scaleBy),
    ...(value !== undefined && { value }),
    scaled: scaleBy !== 0,
  };
}

/** Runs a policy; `params` must have passed its schema (POLICY_SCHEMAS). */
export function decide(policy: PolicyName, params: PolicyParameters, input: PolicyInput): PolicyDecision {
  return policy === 'npreserving' ? npreserving(params as NPreservingParameters, input) : sensor(params as SensorParameters, input);
}

/**
 * Counts failures in a row: a process that failed adds one, one that reached RUNNING resets the count.
 * Returns the new count and whether the service is now FAILED.
 */
export function judgeFailures(count: number, failed: number, reachedRunning: boolean, bound: number): { failures: number; failed: boolean } {
  const failures = reachedRunning ? failed : count + failed;
  return { failures, failed: bound > 0 && failures >= bound };
}
