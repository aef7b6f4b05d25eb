/**
 * The process dispatcher's message protocol (`dispatcher/main`). Every message is an object with one
 * key naming what it is; the zod union below is the type's `validate`, and the gRPC service parses
 * requests with it too, so a bad request is refused with the same reason everywhere.
 *
 * Asks (each answered with a RoleReply, see ../role-reply.ts):
 *   createDefinition | updateDefinition  ProcessDefinition          -> ProcessDefinition
 *   removeDefinition {id}                                           -> {removed: id}
 *   describeDefinition {id}                                         -> ProcessDefinition (NOT_FOUND)
 *   listDefinitions {}                                              -> {definitions}
 *   schedule ScheduleRequest                                        -> ProcessRecord
 *   describe {upid}                                                 -> ProcessRecord (NOT_FOUND)
 *   list {states?}                                                  -> {processes}
 *   terminate | restart {upid}                                      -> ProcessRecord
 *   evacuate {nodeId} | {instanceId}                                -> {agents}: the agents dropped
 *   boot {booting, recover?}                                        -> {booting, recovered}
 *   status true                                                     -> DispatcherStatus
 *
 * Tells:
 *   heartbeat AgentHeartbeat    from execution engine agents (docs/processes.md); a malformed one is
 *                               logged and dropped, never a crash and never a refusal the agent must handle
 *   tick true                   the dispatcher's own timer
 *   capacity CapacityResult     the dispatcher's own report of an EPU domain reconfigure it made
 *                               outside a turn (see ./dispatcher.ts)
 *   capacityRetry true          the dispatcher's own timer: try again the needs no domain took yet
 *   {op: "domain.changed", ...} from the EPU domains it subscribed to; a worker instance going away
 *                               evacuates its agents
 */
import { z } from 'zod';
import type { ActorRef } from '../../runtime/ref.js';
import { parseMessage } from '../message-schema.js';
import { DomainChangedSchema } from '../epum/protocol.js';
import type { AgentHeartbeat, AgentRecord, ProcessDefinition, ProcessRecord } from './core.js';
import { AGENT_STATES, PROCESS_STATES, QUEUEING_MODES, RESTART_MODES, type ProcessState } from './states.js';

/** The one dispatcher of a cluster. */
export const DISPATCHER_REF: ActorRef = { type: 'dispatcher', id: 'main' };

/** The execution engine agent of a worker node. */
export function agentRef(nodeId: string): ActorRef {
  return { type: 'ee-agent', id: nodeId };
}

const Id = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' });
const Json = z.record(z.string(), z.unknown(), { error: 'must be an object' });

export const ProcessDefinitionSchema = z.strictObject({
  id: Id,
  type: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(128),
  executable: Json,
  config: Json.optional(),
  description: z.string().max(1024, { error: 'must be at most 1024 characters' }).optional(),
});

export const ScheduleSchema = z.strictObject({
  upid: Id,
  definitionId: Id,
  configuration: Json.optional(),
  // Checked by the core's parseConstraints, which names the bad key and operator.
  constraints: z.unknown().optional(),
  queueingMode: z.enum(QUEUEING_MODES, { error: `must be one of ${QUEUEING_MODES.join(', ')}` }).optional(),
  restartMode: z.enum(RESTART_MODES, { error: `must be one of ${RESTART_MODES.join(', ')}` }).optional(),
  executionEngine: Id.optional(),
  nodeExclusive: Id.optional(),
  subscribers: z.array(Id).max(64).optional(),
  name: z.string().max(256).optional(),
});

/**
 * A timed run of a definition: once at `at` (epoch ms), or every `every` ms from `at` (or from now),
 * `count` times at most. Each run is a process `<name>-<n>` (restart mode NEVER: a run that fails is
 * not run again, the next one comes at its time). A configuration with `result: <stream>` publishes
 * each run's result there (the execution-engine agent does).
 */
export const TimerSchema = z
  .strictObject({
    name: Id,
    definitionId: Id,
    configuration: Json.optional(),
    at: z.number({ error: 'must be a time in ms since the epoch' }).int().min(0).optional(),
    every: z.number({ error: 'must be a number of ms' }).int().min(100, { error: 'must be at least 100 ms' }).optional(),
    count: z.number().int().min(1, { error: 'must be a whole number >= 1' }).optional(),
    constraints: z.unknown().optional(),
    executionEngine: Id.optional(),
  })
  .refine((t) => t.at !== undefined || t.every !== undefined, { error: 'give at (a time) or every (an interval), or both' });
export type TimerSpec = z.infer<typeof TimerSchema>;

/** A timer as the dispatcher keeps it. */
export interface TimerRecord extends TimerSpec {
  /** When the next run starts (ms since the epoch). */
  next: number;
  /** Runs started so far. */
  runs: number;
  lastError?: string;
}

const ProcessStateSchema = z.enum(PROCESS_STATES, { error: `must be one of ${PROCESS_STATES.join(', ')}` });

/** What an agent reports; the core checks it again (checkHeartbeat) as its own contract. */
export const AgentHeartbeatSchema = z.object({
  agentId: Id,
  nodeId: Id,
  engineType: Id,
  slots: z.number().int().min(0),
  processes: z.array(
    z.object({
      upid: Id,
      round: z.number().int().min(0),
      state: z.enum(['PENDING', 'RUNNING', 'TERMINATING', 'TERMINATED', 'EXITED', 'FAILED']),
      lastError: z.string().optional(),
    }),
  ),
  properties: Json.optional(),
  at: z.number().finite(),
});

const REPORTED_STATES: ReadonlySet<unknown> = new Set(AGENT_STATES);

/**
 * True only for a heartbeat AgentHeartbeatSchema accepts (this check is stricter where the two could
 * differ: `properties` must be a plain object), so the dispatcher may take it as it is. The schema's
 * output differs only in dropping unknown keys, which the core does not read. Every agent heartbeats
 * about once a second and its reports grow with its slots: zod costs several times this check. On
 * false, the schema decides and names what is wrong.
 */
export function isWellFormedHeartbeat(v: unknown): v is AgentHeartbeat {
  if (!isRecord(v)) return false;
  if (!isId(v.agentId) || !isId(v.nodeId) || !isId(v.engineType) || !isCount(v.slots)) return false;
  if (typeof v.at !== 'number' || !Number.isFinite(v.at)) return false;
  if (v.properties !== undefined && !(isRecord(v.properties) && isPlain(v.properties))) return false;
  if (!Array.isArray(v.processes)) return false;
  for (const r of v.processes as unknown[]) {
    if (!isRecord(r) || !isId(r.upid) || !isCount(r.round) || !REPORTED_STATES.has(r.state)) return false;
    if (r.lastError !== undefined && typeof r.lastError !== 'string') return false;
  }
  return true;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPlain(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** What `Id` accepts. */
function isId(v: unknown): boolean {
  return typeof v === 'string' && v.length >= 1 && v.length <= 256;
}

/** What `z.number().int().min(0)` accepts. */
function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export const CapacityResultSchema = z.strictObject({
  engineType: z.string(),
  preserveN: z.number().int().min(0),
  ok: z.boolean(),
  error: z.string().optional(),
  subscribed: z.boolean().optional(),
});
export type CapacityResult = z.infer<typeof CapacityResultSchema>;

const Upid = z.strictObject({ upid: Id });

export const DispatcherMessageSchema = z.union([
  z.strictObject({ createDefinition: ProcessDefinitionSchema }),
  z.strictObject({ updateDefinition: ProcessDefinitionSchema }),
  z.strictObject({ removeDefinition: z.strictObject({ id: Id }) }),
  z.strictObject({ describeDefinition: z.strictObject({ id: Id }) }),
  z.strictObject({ listDefinitions: z.strictObject({}) }),
  z.strictObject({ schedule: ScheduleSchema }),
  z.strictObject({ describe: Upid }),
  z.strictObject({ list: z.strictObject({ states: z.array(ProcessStateSchema).optional() }) }),
  z.strictObject({ terminate: Upid }),
  z.strictObject({ restart: Upid }),
  z.strictObject({
    evacuate: z
      .strictObject({ nodeId: Id.optional(), instanceId: Id.optional() })
      .refine((e) => (e.nodeId === undefined) !== (e.instanceId === undefined), { error: 'give exactly one of nodeId and instanceId' }),
  }),
  z.strictObject({
    boot: z.strictObject({
      booting: z.boolean({ error: 'must be true or false' }),
      // The whole system restarted: every live process is from before it (see DispatcherCore.recover).
      recover: z.boolean({ error: 'must be true or false' }).optional(),
    }),
  }),
  z.strictObject({ status: z.literal(true) }),
  z.strictObject({ timer: TimerSchema }),
  z.strictObject({ cancelTimer: z.strictObject({ name: Id }) }),
  z.strictObject({ listTimers: z.strictObject({}) }),
  z.strictObject({ fire: z.strictObject({ name: Id }) }),
  // Loose on purpose: a bad heartbeat is dropped with a warning in the turn, not refused at the door.
  z.strictObject({ heartbeat: z.unknown() }),
  z.strictObject({ tick: z.literal(true) }),
  z.strictObject({ capacity: CapacityResultSchema }),
  z.strictObject({ capacityRetry: z.literal(true) }),
  DomainChangedSchema,
]);
export type DispatcherMessage = z.infer<typeof DispatcherMessageSchema>;

/**
 * The message as the dispatcher will see it, or InvalidArgumentError naming each bad field. A union
 * of one-key objects reports every branch's complaint; the branch named by the message's key is the
 * one the caller meant, so that one is checked alone for a clear reason.
 */
export function parseDispatcherMessage(message: unknown): DispatcherMessage {
  if (typeof message === 'object' && message !== null && !Array.isArray(message)) {
    // Heartbeats are most of the messages, and their branch takes any value (the turn checks it):
    // `{heartbeat}` and no other key is all the branch asks, without a schema run.
    if (isOnlyHeartbeat(message)) return message as DispatcherMessage;
    const keys = Object.keys(message);
    const branch = keys.length === 1 ? BRANCHES.get(keys[0]!) : undefined;
    if (branch) return parseMessage(branch, message) as DispatcherMessage;
  }
  return parseMessage(DispatcherMessageSchema, message);
}

/** Whether `{heartbeat: z.unknown()}` (a strict object: no other key, as zod lists them) takes `message`. */
function isOnlyHeartbeat(message: object): boolean {
  if (!Object.hasOwn(message, 'heartbeat')) return false;
  for (const key in message) if (key !== 'heartbeat') return false;
  return true;
}

const BRANCHES = new Map<string, z.ZodType>(
  DispatcherMessageSchema.options.flatMap((o): Array<[string, z.ZodType]> => {
    const shape = (o as unknown as { shape?: Record<string, unknown> }).shape;
    const keys = shape ? Object.keys(shape) : [];
    return keys.length === 1 ? [[keys[0]!, o as z.ZodType]] : [];
  }),
);

/** An actor type's `validate` with the same reasons as parseDispatcherMessage. */
export function validateDispatcherMessage(message: unknown): string | undefined {
  try {
    parseDispatcherMessage(message);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

// --- replies and views -----------------------------------------------------------------------------

/** How one engine type's need stands with its EPU domain. */
export interface CapacityView {
  /** The preserve_n the dispatcher wants the domain to keep. */
  wanted: number;
  /** Node ids named for retirement with it. */
  retire: string[];
  /** The domain took it. */
  applied: boolean;
  /** The dispatcher is subscribed to the domain's instance changes. */
  subscribed: boolean;
  /** Why the domain did not take it (no such domain, a refused conf ...). */
  lastError?: string;
}

export interface DispatcherStatus {
  booting: boolean;
  agents: AgentRecord[];
  queue: Array<{ upid: string; round: number }>;
  capacity: Record<string, CapacityView>;
}

export interface DispatcherReplies {
  createDefinition: ProcessDefinition;
  updateDefinition: ProcessDefinition;
  removeDefinition: { removed: string };
  describeDefinition: ProcessDefinition;
  listDefinitions: { definitions: ProcessDefinition[] };
  schedule: ProcessRecord;
  describe: ProcessRecord;
  list: { processes: ProcessRecord[] };
  terminate: ProcessRecord;
  restart: ProcessRecord;
  evacuate: { agents: string[] };
  boot: { booting: boolean; recovered: string[] };
  status: DispatcherStatus;
  timer: TimerRecord;
  cancelTimer: { cancelled: string };
  listTimers: { timers: TimerRecord[] };
}
export type DispatcherAsk = keyof DispatcherReplies;

/** What the dispatcher tells a subscriber that is an actor. */
export interface ProcessNotice {
  process: { upid: string; state: ProcessState; round: number };
}
