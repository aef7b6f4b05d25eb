/**
 * EPU management's message protocol: what a domain actor (`epum/<domain>`) and the domain registry
 * (`epum-registry/main`) accept, what they answer, and what a domain tells its subscribers. The zod
 * unions below are the types' `validate`, and the gRPC service parses requests with them too, so a
 * bad request is refused with the same reason everywhere.
 *
 * Domain registry (asks, each answered with a RoleReply, see ../role-reply.ts):
 *   domain.add     {id, definition?, config?}   a definition (template) and/or an inline config
 *   domain.remove  {id}                          terminates the domain's instances, then deletes it
 *   domain.list    {}
 *   domain.get     {id}                          the index entry, or NOT_FOUND
 *   def.add | def.update {name, definition}; def.describe | def.remove {name}; def.list {}
 * Told to the registry by domains (through their outbox, so the index follows the domains even
 * across a crash between a domain's turn and the registry's):
 *   domain.registered {id, generation, engine, created_at, definition?}   domain.removed {id, generation}
 *
 * Domain (`epum/<id>`, one actor per domain, so domains fail over independently):
 *   create       {config, definition?}   from the registry only (users go through domain.add)
 *   remove       {}                      from the registry only
 *   describe     {}
 *   reconfigure  {engine_conf?, health?, tick_seconds?}   applied on the next tick
 *   subscribe | unsubscribe {subscriber}   an actor told every change of an instance's state or health
 *   heartbeat    {instance_id, node_id?, cpu_load?, free_memory?, load_average?, error?}   from workers
 *   instances.changed   from the provisioner (InstancesChangedSchema)
 *   members.changed {}  the node hosting the domain saw the cluster's membership change
 *   tick {}             the domain's own timer
 *
 * What subscribers get: `{op: "domain.changed", domain, instances: DomainInstanceView[]}` after every
 * turn that changed the state or health of instances, through the domain's outbox (durable, once).
 */
import { z } from 'zod';
import type { ActorRef } from '../../runtime/ref.js';
import { ResourceName, RefKey, parseMessage } from '../message-schema.js';
import { InstancesChangedSchema } from '../provisioner-protocol.js';
import type { HealthState, InstanceState, Json, SensorSample } from './engine.js';

/** The domain registry's one actor. */
export const EPUM_REGISTRY_REF: ActorRef = { type: 'epum-registry', id: 'main' };

/** The actor type of domains: `epum/<domain id>`. */
export const DOMAIN_TYPE = 'epum';

export function domainRef(id: string): ActorRef {
  return { type: DOMAIN_TYPE, id };
}

/**
 * The launch variable naming the domain an instance belongs to. The domain adds it to every launch;
 * a worker reads it from its instance record to know where to send its heartbeats.
 */
export const DOMAIN_VAR = 'epum_domain';

export const DomainName = ResourceName;
const EngineName = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/, { error: 'must be a decision engine name (a letter, then letters, digits, "_", "." or "-")' });
const Description = z.string().max(1024, { error: 'must be at most 1024 characters' });

const secondsAtMost = (max: number) =>
  z
    .number({ error: 'must be a number of seconds' })
    .finite({ error: 'must be a number of seconds' })
    .min(0, { error: 'must be a number of seconds >= 0' })
    .max(max, { error: `must be at most ${max} seconds` });

/** An engine conf as given: the engine checks it (Engine.validateConf). */
const EngineConf = z.record(z.string(), z.unknown(), { error: 'must be an object of engine settings' });

// --- health --------------------------------------------------------------------------------------

/**
 * How a domain judges its instances' health (all in seconds):
 *   boot_timeout            an instance not RUNNING this long after its launch was asked for is MISSING
 *   missing_timeout         a RUNNING instance that has heartbeated and is silent this long is OUT_OF_CONTACT
 *   really_missing_timeout  OUT_OF_CONTACT this long more is MISSING (and is replaced)
 *   zombie_seconds          a heartbeat this long after the instance's termination was asked for
 *                           (or after it was reported gone) makes it a ZOMBIE, killed again
 *   monitor_health          false: health is not judged (instances stay OK; the provisioner's states
 *                           still count)
 * The original EPU's defaults took minutes to notice a dead worker; here a worker the cluster
 * declares down is MISSING at once, so the silence timeouts only catch what membership does not.
 */
export const HEALTH_DEFAULTS = {
  monitor_health: true,
  boot_timeout: 300,
  missing_timeout: 10,
  really_missing_timeout: 10,
  zombie_seconds: 10,
} as const;

const healthShape = {
  monitor_health: z.boolean({ error: 'must be true or false' }),
  boot_timeout: secondsAtMost(86_400),
  missing_timeout: secondsAtMost(86_400),
  really_missing_timeout: secondsAtMost(86_400),
  zombie_seconds: secondsAtMost(86_400),
};

export const HealthConfSchema = z.strictObject({
  monitor_health: healthShape.monitor_health.default(HEALTH_DEFAULTS.monitor_health),
  boot_timeout: healthShape.boot_timeout.default(HEALTH_DEFAULTS.boot_timeout),
  missing_timeout: healthShape.missing_timeout.default(HEALTH_DEFAULTS.missing_timeout),
  really_missing_timeout: healthShape.really_missing_timeout.default(HEALTH_DEFAULTS.really_missing_timeout),
  zombie_seconds: healthShape.zombie_seconds.default(HEALTH_DEFAULTS.zombie_seconds),
});
export type HealthConf = z.infer<typeof HealthConfSchema>;

/** Health settings as a template or a patch gives them: any subset, no defaults. */
const PartialHealth = z.strictObject({
  monitor_health: healthShape.monitor_health.optional(),
  boot_timeout: healthShape.boot_timeout.optional(),
  missing_timeout: healthShape.missing_timeout.optional(),
  really_missing_timeout: healthShape.really_missing_timeout.optional(),
  zombie_seconds: healthShape.zombie_seconds.optional(),
});
export type PartialHealthConf = z.infer<typeof PartialHealth>;

const TickSeconds = z
  .number({ error: 'must be a number of seconds' })
  .min(0.01, { error: 'must be at least 0.01 seconds' })
  .max(3600, { error: 'must be at most 3600 seconds' });

// --- config --------------------------------------------------------------------------------------

/**
 * A domain's configuration, as the original EPU's: `engine` (which decision engine; fixed for the
 * domain's life), `engine_conf` (the engine's settings; reconfigurable), `health`, and `tick_seconds`
 * (how often the domain decides; EpumOptions.tickMs when absent).
 */
export const DomainConfigSchema = z.strictObject({
  engine: EngineName,
  engine_conf: EngineConf.default({}),
  health: HealthConfSchema.default(HealthConfSchema.parse({})),
  tick_seconds: TickSeconds.optional(),
});
export type DomainConfig = z.infer<typeof DomainConfigSchema>;

/** A config as an add request or a definition gives it: every section optional, merged later. */
export const PartialConfigSchema = z.strictObject({
  engine: EngineName.optional(),
  engine_conf: EngineConf.optional(),
  health: PartialHealth.optional(),
  tick_seconds: TickSeconds.optional(),
});
export type PartialConfig = z.infer<typeof PartialConfigSchema>;

/** A domain definition: a named template of a config that `domain.add` fills in. */
export const DefinitionSchema = z.strictObject({
  description: Description.optional(),
  config: PartialConfigSchema.extend({ engine: EngineName }),
});
export type Definition = z.infer<typeof DefinitionSchema>;

/**
 * A reconfigure: each top-level key of `engine_conf` replaces the current one whole (null removes
 * it); `health` keys likewise (null restores the default); `tick_seconds` null restores the default.
 * The engine cannot change.
 */
export const ReconfigureSchema = z
  .strictObject({
    engine: z.unknown().optional(),
    engine_conf: z.record(z.string(), z.unknown(), { error: 'must be an object of engine settings' }).optional(),
    health: z
      .strictObject({
        monitor_health: healthShape.monitor_health.nullable().optional(),
        boot_timeout: healthShape.boot_timeout.nullable().optional(),
        missing_timeout: healthShape.missing_timeout.nullable().optional(),
        really_missing_timeout: healthShape.really_missing_timeout.nullable().optional(),
        zombie_seconds: healthShape.zombie_seconds.nullable().optional(),
      })
      .optional(),
    tick_seconds: TickSeconds.nullable().optional(),
  })
  .superRefine((r, ctx) => {
    if (r.engine !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['engine'], message: 'cannot be changed by reconfigure; remove the domain and add it again' });
    }
    if (r.engine_conf === undefined && r.health === undefined && r.tick_seconds === undefined && r.engine === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a reconfigure must change engine_conf, health or tick_seconds' });
    }
  });
export type Reconfigure = z.infer<typeof ReconfigureSchema>;

const Metric = z.number().finite().optional();

// --- the domain's protocol ---------------------------------------------------------------------

export const DomainMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('create'), config: DomainConfigSchema, definition: DomainName.optional() }),
  z.strictObject({ op: z.literal('remove') }),
  z.strictObject({ op: z.literal('describe') }),
  z.strictObject({ op: z.literal('reconfigure'), patch: ReconfigureSchema }),
  z.strictObject({ op: z.literal('subscribe'), subscriber: RefKey }),
  z.strictObject({ op: z.literal('unsubscribe'), subscriber: RefKey }),
  z.strictObject({
    op: z.literal('heartbeat'),
    instance_id: z.string().min(1).max(128),
    node_id: z.string().max(256).optional(),
    /** The worker process's CPU use since its last heartbeat, as a fraction of one core. */
    cpu_load: Metric,
    /** Free memory of the worker's machine, bytes. */
    free_memory: Metric,
    /** The worker machine's 1-minute load average. */
    load_average: Metric,
    /** Set when the worker reports a fault of its own: the instance is then PROCESS_ERROR. */
    error: z.string().max(1024).optional(),
  }),
  InstancesChangedSchema,
  z.strictObject({ op: z.literal('members.changed') }),
  z.strictObject({ op: z.literal('tick') }),
]);
export type DomainMessage = z.infer<typeof DomainMessageSchema>;
export type DomainOp = DomainMessage['op'];
export type DomainMessageOf<Op extends DomainOp> = Extract<DomainMessage, { op: Op }>;

/** The message as a domain will see it (defaults filled), or InvalidArgumentError naming each bad field. */
export function parseDomainMessage(message: unknown): DomainMessage {
  return parseMessage(DomainMessageSchema, message);
}

// --- the registry's protocol ---------------------------------------------------------------------

export const RegistryMessageSchema = z.discriminatedUnion('op', [
  z
    .strictObject({ op: z.literal('domain.add'), id: DomainName, definition: DomainName.optional(), config: PartialConfigSchema.optional() })
    .refine((m) => m.definition !== undefined || m.config?.engine !== undefined, {
      error: 'give a definition, or a config that names its engine',
      path: ['config', 'engine'],
    }),
  z.strictObject({ op: z.literal('domain.remove'), id: DomainName }),
  z.strictObject({ op: z.literal('domain.list') }),
  z.strictObject({ op: z.literal('domain.get'), id: DomainName }),
  z.strictObject({
    op: z.literal('domain.registered'),
    id: DomainName,
    generation: z.string().min(1).max(32),
    engine: z.string(),
    created_at: z.number(),
    definition: DomainName.optional(),
  }),
  z.strictObject({ op: z.literal('domain.removed'), id: DomainName, generation: z.string().min(1).max(32) }),
  z.strictObject({ op: z.literal('def.add'), name: DomainName, definition: DefinitionSchema }),
  z.strictObject({ op: z.literal('def.update'), name: DomainName, definition: DefinitionSchema }),
  z.strictObject({ op: z.literal('def.describe'), name: DomainName }),
  z.strictObject({ op: z.literal('def.remove'), name: DomainName }),
  z.strictObject({ op: z.literal('def.list') }),
]);
export type RegistryMessage = z.infer<typeof RegistryMessageSchema>;
export type RegistryOp = RegistryMessage['op'];
export type RegistryMessageOf<Op extends RegistryOp> = Extract<RegistryMessage, { op: Op }>;

export function parseRegistryMessage(message: unknown): RegistryMessage {
  return parseMessage(RegistryMessageSchema, message);
}

// --- replies and views ---------------------------------------------------------------------------

/** One instance of a domain as describe and subscribers show it. */
export interface DomainInstanceView {
  instance_id: string;
  launch_id: string;
  state: InstanceState;
  state_desc?: string;
  state_detail?: string;
  health: HealthState;
  health_reason?: string;
  /** When the health last changed, ms since the epoch. */
  health_since: number;
  site: string;
  deployable_type: string;
  vars: Record<string, string>;
  node_id?: string;
  address?: string;
  /** When the domain asked for its launch. */
  launch_time: number;
  /** When the domain last saw its state change. */
  state_changed_at: number;
  /** When it became RUNNING. */
  running_since?: number;
  /** When the domain asked for its termination (last time). */
  terminate_asked_at?: number;
  /** When it last heartbeated (this incarnation of the domain actor only), and what it reported. */
  last_heartbeat?: number;
  metrics?: Record<string, number>;
}

export type DomainStatus = 'active' | 'removing';

export interface DomainDescription {
  id: string;
  status: DomainStatus;
  /** Distinguishes this domain from an earlier one of the same id (in launch ids, too). */
  generation: string;
  created_at: number;
  /** The definition it was made from, if any. */
  definition?: string;
  /** The config in force. */
  config: DomainConfig;
  /** A reconfigure waiting for the next tick. */
  pending_config?: DomainConfig;
  /** Bumped by each reconfigure; `applied_version` catches up on the next tick. */
  version: number;
  applied_version: number;
  engine_state: Json;
  /** Why the engine could not decide on the last tick (unknown engine on this node, a bad conf). */
  error?: string;
  /** Recent sensor samples by series (this incarnation of the domain actor only). */
  sensors: Record<string, SensorSample[]>;
  instances: DomainInstanceView[];
  /** Live instances by state and by health. */
  counts: { states: Record<string, number>; health: Record<string, number> };
  subscribers: string[];
  last_tick_at?: number;
  /** The last tick that asked for anything, and what it asked for. */
  last_decision?: { at: number; launched: number; destroyed: string[] };
}

export interface DomainSummary {
  id: string;
  engine: string;
  status: DomainStatus;
  generation: string;
  created_at: number;
  definition?: string;
}

export interface DefinitionRecord {
  name: string;
  /** 1 when added; bumped by each update that changes it. */
  version: number;
  definition: Definition;
}

export interface ReconfigureReply {
  /** The version the domain will be at once the next tick applies it. */
  version: number;
  pending_config: DomainConfig;
}

export interface RemoveReply {
  id: string;
  status: DomainStatus;
  /** Live instances whose termination the removal starts. */
  terminating: number;
}

/** The reply value of each domain request, by op (its own messages reply null). */
export interface DomainReplies {
  create: { created: boolean; domain: DomainDescription };
  remove: RemoveReply;
  describe: DomainDescription;
  reconfigure: ReconfigureReply;
  subscribe: { changed: boolean };
  unsubscribe: { changed: boolean };
  /** `zombie`: the instance was terminated; the worker should stop. `unknown`: the domain has no such instance. */
  heartbeat: { verdict: 'ok' | 'zombie' | 'unknown' };
  'instances.changed': null;
  'members.changed': null;
  tick: null;
}

export interface RegistryReplies {
  'domain.add': { created: boolean; domain: DomainDescription };
  'domain.remove': RemoveReply;
  'domain.list': { domains: DomainSummary[] };
  'domain.get': DomainSummary;
  'domain.registered': null;
  'domain.removed': null;
  'def.add': { created: boolean; record: DefinitionRecord };
  'def.update': DefinitionRecord;
  'def.describe': DefinitionRecord;
  'def.remove': { removed: string };
  'def.list': { definitions: DefinitionRecord[] };
}

/** What a domain's subscribers are told. */
export const DomainChangedSchema = z.object({
  op: z.literal('domain.changed'),
  domain: z.string(),
  instances: z.array(z.record(z.string(), z.unknown())),
});
export type DomainChanged = { op: 'domain.changed'; domain: string; instances: DomainInstanceView[] };
