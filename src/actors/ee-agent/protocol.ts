/**
 * The execution-engine agent's protocol (`ee-agent/<node-id>`), the state it keeps, and the
 * lifecycle of the processes it holds.
 *
 * From the dispatcher (tells, see docs/processes.md): `launch`, `terminate`, `cleanup`.
 * From its own runner (tells, outside any turn): `engine` (how a start or a run ended) and `pump`
 * (a transform's batch failed). From the node: `boot` (activates the agent at the worker's start).
 * From its own timer: `beat`. Asks (answered with a role reply): `logs`, `describe`.
 *
 * A process's state within one round, as the agent holds it:
 *
 *   PENDING -> RUNNING -> EXITED       (ended by itself with code 0)
 *   PENDING | RUNNING -> FAILED        (start failed, non-zero exit, signal, worker restarted)
 *   PENDING | RUNNING -> TERMINATING -> TERMINATED   (terminate asked; TERMINATED once it is gone)
 *   REJECTED                            (launched past the slot limit; never started)
 *
 * A newer round of the same upid replaces the entry (the old round's process is stopped first); an
 * older round is ignored. `cleanup` forgets a round that ended.
 */
import { z } from 'zod';
import { parseMessage } from '../message-schema.js';
import type { AgentProcessState } from '../dispatcher/states.js';
import type { LogEntry } from '../../engines/process-log.js';

export const EE_AGENT_TYPE = 'ee-agent';

/** What the agent holds of a process is what it reports: the dispatcher's list of agent states. */
export type AgentLocalState = AgentProcessState;

/** Holding a slot: between the launch and the end of the run. */
export function holdsSlot(state: AgentLocalState): boolean {
  return state === 'PENDING' || state === 'RUNNING' || state === 'TERMINATING';
}

/** Nothing more happens to the round until it is cleaned up or replaced. */
export function hasEnded(state: AgentLocalState): boolean {
  return !holdsSlot(state);
}

const Upid = z.string().min(1).max(200);
const Round = z.number().int().min(0);
const JsonObject = z.record(z.string(), z.unknown());

export const DefinitionSchema = z.object({
  id: z.string().min(1),
  /** 'exec', 'js', or a built-in transform ('window-average'). */
  type: z.string().min(1),
  executable: JsonObject,
  config: JsonObject.default({}),
  description: z.string().optional(),
});
export type AgentDefinition = z.output<typeof DefinitionSchema>;

export const ExecExecutableSchema = z.object({
  argv: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
  protocol: z.enum(['jsonl', 'none']).optional(),
});

export const JsExecutableSchema = z.object({ module: z.string().min(1) });

/** The part of a process's configuration that makes it a transform (the pump's input and output). */
export const TransformConfigSchema = z.object({
  inputs: z.array(z.string().min(1)).min(1),
  output: z.string().min(1),
  batch: z.number().int().min(1).max(100_000).optional(),
  /** Where a new subscription starts (default 'earliest'). */
  from: z.union([z.literal('earliest'), z.literal('latest'), z.number().int().min(0)]).optional(),
  /** Also appends every output to this file on the worker, one JSON line each (see pump.ts). */
  sink: z.strictObject({ file: z.string().min(1) }).optional(),
});
export type TransformConfig = z.output<typeof TransformConfigSchema>;

const ExitSchema = z.object({ code: z.number().int().nullable(), signal: z.string().nullable(), reason: z.string().optional() });

/** One schema per message kind, keyed by the message's only field. */
const VARIANTS = {
  launch: z.object({ upid: Upid, round: Round, definition: DefinitionSchema, configuration: JsonObject.default({}) }),
  terminate: z.object({ upid: Upid, round: Round }),
  cleanup: z.object({ upid: Upid, round: Round }),
  engine: z.object({
    upid: Upid,
    round: Round,
    /** running: started; exited/failed: ended by itself or could not start; stopped: gone after a terminate. */
    event: z.enum(['running', 'exited', 'failed', 'stopped']),
    exit: ExitSchema.optional(),
    error: z.string().optional(),
    pid: z.number().int().optional(),
  }),
  pump: z.object({ upid: Upid, round: Round, error: z.string(), failures: z.number().int().min(1) }),
  beat: z.literal(true),
  boot: z.literal(true),
  logs: z.object({ upid: Upid, since: z.number().int().min(0).optional() }),
  describe: z.literal(true),
} as const;

type Variants = typeof VARIANTS;
export type EeAgentMessage = { [K in keyof Variants]: { [P in K]: z.output<Variants[K]> } }[keyof Variants];
export type EngineEvent = z.output<Variants['engine']>;

/**
 * The agent's messages as one schema. A union would answer a bad launch with zod's "Invalid input";
 * dispatching on the only key names the bad field instead (`launch.round: ...`).
 */
export const EeAgentMessageSchema = z.custom<EeAgentMessage>().transform((message, ctx) => {
  const keys = typeof message === 'object' && message !== null && !Array.isArray(message) ? Object.keys(message) : [];
  const key = keys.length === 1 && Object.hasOwn(VARIANTS, keys[0]!) ? (keys[0] as keyof Variants) : undefined;
  if (!key) {
    ctx.addIssue({ code: 'custom', message: `an ee-agent message is an object with one of the fields ${Object.keys(VARIANTS).join(', ')}` });
    return z.NEVER;
  }
  const r = VARIANTS[key].safeParse((message as Record<string, unknown>)[key]);
  if (!r.success) {
    for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [key, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
    return z.NEVER;
  }
  return { [key]: r.data } as EeAgentMessage;
});

export function parseEeAgentMessage(message: unknown): EeAgentMessage {
  return parseMessage(EeAgentMessageSchema, message);
}

export interface AgentProcess {
  round: number;
  state: AgentLocalState;
  definition: AgentDefinition;
  configuration: Record<string, unknown>;
  lastError?: string;
  /** When the agent heard the run started (its clock). */
  startedAt?: number;
  /** The program's process id (exec engines), as the runner reported it. */
  pid?: number;
  /** Batches a transform's engine failed in this round. */
  failedBatches?: number;
}

export interface EeAgentState {
  processes: Record<string, AgentProcess>;
  slots: number;
}

export function emptyEeAgentState(slots: number): EeAgentState {
  return { processes: {}, slots };
}

/** The answer to `logs`. `round` is undefined when the worker no longer has that process's log. */
export interface LogsReply {
  upid: string;
  round?: number;
  lines: LogEntry[];
  dropped: number;
}

export interface DescribeReply {
  agentId: string;
  slots: number;
  used: number;
  processes: Array<{ upid: string; round: number; state: AgentLocalState; lastError?: string; startedAt?: number; pid?: number; failedBatches?: number; definitionId: string }>;
}
