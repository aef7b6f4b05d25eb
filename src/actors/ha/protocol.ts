/**
 * The HA service's message protocol: one actor per service (`ha/<name>`) and the registry
 * (`ha-registry/main`, the index `cei ha list` reads). Every message is `{op, ...}`; asks answer a
 * RoleReply (../role-reply.ts).
 *
 * Service `ha/<name>`:
 *   create {config}                         -> HaDescription (ALREADY_EXISTS for another config)
 *   describe {}                             -> HaDescription (NOT_FOUND when not created)
 *   reconfigure {policy?, policy_parameters?} -> HaDescription; parameters are merged over the old
 *                                              ones when the policy stays, replaced when it changes;
 *                                              a FAILED service goes back to PENDING
 *   remove {}                               -> {name, terminating}: terminates every process; the
 *                                              actor tells the registry `removed` and stops once none is left
 *   tick {}                                 its own timer: read the dispatchers and the sensor
 *   observed {processes, missing, sample?}  its own report of that read (told back after the turn)
 *   scheduled {upid, error?} / terminated {upid, error?}  its own reports of the asks it made
 *
 * Registry `ha-registry/main`:
 *   create {name, config} -> HaDescription; list {} -> {services}; get {name} -> HaSummary (NOT_FOUND);
 *   remove {name} -> {name, terminating}; removed {name} (tell, from the service)
 */
import { z } from 'zod';
import type { ActorRef } from '../../runtime/ref.js';
import { RefKey, ResourceName, parseMessage } from '../message-schema.js';
import { QUEUEING_MODES, RESTART_MODES, PROCESS_STATES } from '../dispatcher/states.js';
import { POLICY_NAMES, POLICY_SCHEMAS, type HaProcessState, type HaState, type PolicyName, type Sample } from './policy.js';
import { InvalidArgumentError } from '../../errors.js';
import { zodReason } from '../zod-reason.js';

export const HA_TYPE = 'ha';
export const HA_REGISTRY_REF: ActorRef = { type: 'ha-registry', id: 'main' };
export const DEFAULT_DISPATCHERS = ['dispatcher/main'];

export function haRef(name: string): ActorRef {
  return { type: HA_TYPE, id: name };
}

const Json = z.record(z.string(), z.unknown(), { error: 'must be an object' });
const Id = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(256);

/** How the service's processes are scheduled (the dispatcher's own options). */
export const HaScheduleSchema = z.strictObject({
  queueing_mode: z.enum(QUEUEING_MODES, { error: `must be one of ${QUEUEING_MODES.join(', ')}` }).optional(),
  restart_mode: z.enum(RESTART_MODES, { error: `must be one of ${RESTART_MODES.join(', ')}` }).optional(),
  execution_engine: Id.optional(),
  node_exclusive: Id.optional(),
  constraints: Json.optional(),
});

export const HaConfigSchema = z.strictObject({
  /** The dispatcher's process definition each process runs. */
  definition_id: Id,
  /** The configuration each process gets. */
  configuration: Json.optional(),
  policy: z.enum(POLICY_NAMES, { error: `must be one of ${POLICY_NAMES.join(', ')}` }),
  /** Checked by the policy's own schema (./policy.ts), which names the bad key. */
  policy_parameters: Json,
  /** The dispatchers the service schedules through; each new process goes to the one holding fewest of its processes. */
  dispatchers: z.array(RefKey).min(1, { error: 'must name at least one dispatcher' }).max(16).default(DEFAULT_DISPATCHERS),
  schedule: HaScheduleSchema.optional(),
  /** Processes failing in a row (none reaching RUNNING) that make the service FAILED; 0 never. */
  failure_bound: z.number().int().min(0, { error: 'must be >= 0' }).default(5),
  /** Seconds between decisions (the node's tickMs when absent). */
  tick_seconds: z.number().positive({ error: 'must be > 0' }).max(3600).optional(),
});
export type HaConfig = z.output<typeof HaConfigSchema>;

/** The config with its policy parameters checked and their defaults filled, or INVALID_ARGUMENT naming the field. */
export function parseHaConfig(config: unknown): HaConfig {
  const c = parseMessage(HaConfigSchema, config);
  return { ...c, policy_parameters: parsePolicyParameters(c.policy, c.policy_parameters) };
}

export function parsePolicyParameters(policy: PolicyName, params: unknown): Record<string, unknown> {
  const r = POLICY_SCHEMAS[policy].safeParse(params);
  if (!r.success) throw new InvalidArgumentError(`policy_parameters (${policy}): ${zodReason(r.error)}`);
  return r.data as Record<string, unknown>;
}

const ObservedProcess = z.strictObject({ upid: Id, state: z.enum(PROCESS_STATES), dispatcher: z.string(), lastError: z.string().optional() });

export const HaMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('create'), config: z.unknown() }),
  z.strictObject({ op: z.literal('describe') }),
  z.strictObject({ op: z.literal('reconfigure'), policy: z.enum(POLICY_NAMES, { error: `must be one of ${POLICY_NAMES.join(', ')}` }).optional(), policy_parameters: Json.optional() }),
  z.strictObject({ op: z.literal('remove') }),
  z.strictObject({ op: z.literal('tick') }),
  z.strictObject({ op: z.literal('observed'), processes: z.array(ObservedProcess), missing: z.array(Id), sample: z.number().finite().optional() }),
  z.strictObject({ op: z.literal('scheduled'), upid: Id, error: z.string().optional() }),
  z.strictObject({ op: z.literal('terminated'), upid: Id, error: z.string().optional() }),
]);
export type HaMessage = z.infer<typeof HaMessageSchema>;
export type HaMessageOf<Op extends HaMessage['op']> = Extract<HaMessage, { op: Op }>;

export const HaRegistryMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('create'), name: ResourceName, config: z.unknown() }),
  z.strictObject({ op: z.literal('list') }),
  z.strictObject({ op: z.literal('get'), name: z.string() }),
  z.strictObject({ op: z.literal('remove'), name: z.string() }),
  z.strictObject({ op: z.literal('removed'), name: z.string() }),
]);
export type HaRegistryMessage = z.infer<typeof HaRegistryMessageSchema>;

export function parseHaMessage(message: unknown): HaMessage {
  return parseMessage(HaMessageSchema, message);
}

export function parseHaRegistryMessage(message: unknown): HaRegistryMessage {
  return parseMessage(HaRegistryMessageSchema, message);
}

// --- views ---------------------------------------------------------------------------------------

export interface HaProcessView {
  upid: string;
  state: HaProcessState;
  /** The dispatcher (`type/id`) it was scheduled through. */
  dispatcher: string;
  scheduled_at: number;
  /** Termination asked by the service. */
  terminating: boolean;
  last_error?: string;
}

export interface HaDescription {
  name: string;
  state: HaState;
  config: HaConfig;
  /** Live processes and the final ones of the last decisions (at most a few). */
  processes: HaProcessView[];
  /** Sensor samples kept (sensor policy), oldest first. */
  samples: Sample[];
  /** The value the last decision used (sensor policy). */
  last_value?: number;
  /** Processes failing in a row. */
  failures: number;
  removing: boolean;
  created_at: number;
  last_tick_at?: number;
  last_error?: string;
}

export interface HaSummary {
  name: string;
  policy: PolicyName;
  definition_id: string;
  created_at: number;
  removing: boolean;
}

export interface HaRemoveReply {
  name: string;
  terminating: number;
}
