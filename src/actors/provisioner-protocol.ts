/**
 * The provisioner's message protocol: what `provisioner/main` accepts, what it answers, and what it
 * tells its subscribers. The zod union below is the actor type's `validate`, and the gRPC service
 * parses requests with it too, so a bad request is refused with the same reason everywhere.
 *
 * Requests (asks; each is answered with a RoleReply, see ./role-reply.ts; PROVISIONER_REPLIES maps
 * each op to its reply value):
 *   provision        {launch_id, deployable_type, site, count?, vars?, subscribers?}
 *   terminate_nodes  {instance_ids}
 *   terminate_all    {}   disables the provisioner and terminates every live instance
 *   enable           {}
 *   describe_nodes   {instance_ids?}   all instances when absent or empty
 *   dump_state       {}
 *   subscribe        {subscriber}      an actor ref told about every change of every instance
 *   unsubscribe      {subscriber}
 * Told by worker nodes (src/actors/provisioner-announce.ts):
 *   announce         {instance_id, node_id, address}   "I am instance X, node N, at A"
 * Told by the provisioner to itself (the results of its own IaaS calls and timers; see
 * ./provisioner.ts for why they come back as messages):
 *   tick, launched, terminated, observed
 *
 * What subscribers get: `{op: "instances.changed", instances: InstanceView[]}` after every turn that
 * changed instances they follow, each change in order (an instance that changed twice in one turn
 * appears twice). Delivered through the provisioner's outbox: durable and exactly once per change.
 * A subscriber's own protocol includes InstancesChangedSchema to accept it.
 */
import { z } from 'zod';
import type { ActorRef } from '../runtime/ref.js';
import { INSTANCE_ID } from '../iaas/driver.js';
import { VarsSchema } from './dtrs.js';
import { ResourceName, RefKey, parseMessage } from './message-schema.js';
import { INSTANCE_STATES } from './provisioner-states.js';
import type { InstanceView } from './provisioner-records.js';

export type { InstanceView } from './provisioner-records.js';

/** The provisioner's one actor: every node's Provisioner service asks it, wherever the cluster placed it. */
export const PROVISIONER_REF: ActorRef = { type: 'provisioner', id: 'main' };

/** Most instances one provision may ask for. */
export const MAX_COUNT = 1000;

const LAUNCH_ID_RULE = 'must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit';
/** Launch ids name instances (`<launch_id>-<index>`), which name directories: one safe path component. */
export const LaunchId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, { error: LAUNCH_ID_RULE });
const InstanceId = z.string().regex(INSTANCE_ID, { error: 'must be an instance id (1-128 letters, digits, ".", "_" or "-")' });
const InstanceIds = z.array(InstanceId).max(100_000, { error: 'must list at most 100000 ids' });

const op = <Op extends string>(name: Op) => z.literal(name);

/** A driver's view of one instance, as the provisioner's own messages carry it (src/iaas/driver.ts). */
const DriverInstanceSchema = z.object({
  instanceId: z.string(),
  state: z.enum(['pending', 'started', 'running', 'terminated', 'failed']),
  reason: z.enum(['IAAS_BOOT_FAILED', 'IAAS_TIMEOUT', 'TERMINATE_REQUESTED', 'EXITED', 'NOT_FOUND']).optional(),
  detail: z.string().optional(),
  launchedAt: z.number(),
  since: z.number(),
  handle: z.object({ instanceId: z.string(), pid: z.number().optional(), dir: z.string().optional() }),
  nodeId: z.string().optional(),
  address: z.string().optional(),
});

/** An IaaS call's failure, as a plain value (the error's code, its IaaS reason when it had one, and its message). */
const CallErrorSchema = z.object({ code: z.string(), reason: z.string().optional(), message: z.string(), retryable: z.boolean() });
export type CallError = z.infer<typeof CallErrorSchema>;

const Outcome = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), instances: z.array(DriverInstanceSchema) }),
  z.object({ ok: z.literal(false), error: CallErrorSchema }),
]);

export const ProvisionerMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: op('provision'),
    launch_id: LaunchId,
    deployable_type: ResourceName,
    site: ResourceName,
    count: z
      .number()
      .int({ error: `must be a whole number from 1 to ${MAX_COUNT}` })
      .min(1, { error: `must be a whole number from 1 to ${MAX_COUNT}` })
      .max(MAX_COUNT, { error: `must be a whole number from 1 to ${MAX_COUNT}` })
      .default(1),
    vars: VarsSchema.default({}),
    subscribers: z.array(RefKey).max(16, { error: 'must list at most 16 subscribers' }).default([]),
  }),
  z.strictObject({ op: op('terminate_nodes'), instance_ids: InstanceIds.min(1, { error: 'must list at least one instance id' }) }),
  z.strictObject({ op: op('terminate_all') }),
  z.strictObject({ op: op('enable') }),
  z.strictObject({ op: op('describe_nodes'), instance_ids: InstanceIds.default([]) }),
  z.strictObject({ op: op('dump_state') }),
  z.strictObject({ op: op('subscribe'), subscriber: RefKey }),
  z.strictObject({ op: op('unsubscribe'), subscriber: RefKey }),
  z.strictObject({ op: op('announce'), instance_id: InstanceId, node_id: z.string().min(1).max(256), address: z.string().max(300).default('') }),
  // The provisioner's own messages.
  z.strictObject({ op: op('tick') }),
  z.strictObject({ op: op('launched'), launch_id: LaunchId, attempt: z.number().int().min(1), outcome: Outcome }),
  z.strictObject({ op: op('terminated'), site: ResourceName, instance_ids: InstanceIds, outcome: Outcome }),
  z.strictObject({ op: op('observed'), site: ResourceName, instances: z.array(DriverInstanceSchema) }),
]);

/** Every message the provisioner accepts. */
export type ProvisionerMessage = z.infer<typeof ProvisionerMessageSchema>;
export type ProvisionerOp = ProvisionerMessage['op'];
export type MessageOf<Op extends ProvisionerOp> = Extract<ProvisionerMessage, { op: Op }>;

/** The message as the provisioner will see it (defaults filled), or InvalidArgumentError naming each bad field. */
export function parseProvisionerMessage(message: unknown): ProvisionerMessage {
  return parseMessage(ProvisionerMessageSchema, message);
}

// --- replies ---------------------------------------------------------------------------------------

export interface ProvisionReply {
  /** False when the launch existed already (the instances are then as they are now). */
  created: boolean;
  instances: InstanceView[];
}

export interface NodesReply {
  instances: InstanceView[];
  /** Requested ids no record knows. */
  unknown: string[];
}

export interface TerminateAllReply {
  /** Instances whose termination this call started. */
  terminating: number;
}

export interface EnableReply {
  /** False when it was enabled already. */
  changed: boolean;
}

export interface SubscribeReply {
  /** False when it was (for unsubscribe: was not) subscribed already. */
  changed: boolean;
}

export interface ProvisionerDump {
  enabled: boolean;
  subscribers: string[];
  sites: Record<string, { type: string; settings: Record<string, unknown>; version: number }>;
  launches: Array<{
    launch_id: string;
    deployable_type: string;
    site: string;
    count: number;
    vars: Record<string, string>;
    subscribers: string[];
    created_at: number;
    attempt: number;
    retry_at?: number;
  }>;
  instances: InstanceView[];
  /** Instances per state. */
  counts: Record<string, number>;
}

/** The reply value of each request, by op (internal messages reply null). */
export interface ProvisionerReplies {
  provision: ProvisionReply;
  terminate_nodes: NodesReply;
  terminate_all: TerminateAllReply;
  enable: EnableReply;
  describe_nodes: NodesReply;
  dump_state: ProvisionerDump;
  subscribe: SubscribeReply;
  unsubscribe: SubscribeReply;
  announce: { known: boolean };
  tick: null;
  launched: null;
  terminated: null;
  observed: null;
}

// --- what subscribers get --------------------------------------------------------------------------

const InstanceViewSchema = z.object({
  instance_id: z.string(),
  launch_id: z.string(),
  state: z.enum(INSTANCE_STATES as [string, ...string[]]),
  state_desc: z.string().optional(),
  state_detail: z.string().optional(),
  deployable_type: z.string(),
  site: z.string(),
  vars: z.record(z.string(), z.string()),
  node_id: z.string().optional(),
  address: z.string().optional(),
  created_at: z.number(),
  state_changed_at: z.number(),
  launched_at: z.number().optional(),
});

/**
 * The message every subscriber gets: include it in the subscriber's own protocol (a member of its
 * discriminated union on `op`).
 */
export const InstancesChangedSchema = z.object({
  op: z.literal('instances.changed'),
  instances: z.array(InstanceViewSchema),
});
export type InstancesChanged = { op: 'instances.changed'; instances: InstanceView[] };
