/**
 * A typed client of a node's public ProcessDispatcher service. It speaks the dispatcher's own types
 * (src/actors/dispatcher/core.ts): JSON fields go out as JSON and come back parsed; errors are grpc
 * ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { ProcessDispatcherClient as DispatcherGrpcClient } from './generated/cei/v1/ProcessDispatcher.js';
import type { ProcessDefinition__Output } from './generated/cei/v1/ProcessDefinition.js';
import type { ProcessInfo__Output } from './generated/cei/v1/ProcessInfo.js';
import type { DispatcherStatus__Output } from './generated/cei/v1/DispatcherStatus.js';
import type { ProcessDefinition, ProcessRecord, ScheduleRequest } from './actors/dispatcher/core.js';
import type { ProcessState, QueueingMode, RestartMode } from './actors/dispatcher/states.js';
import type { ProcessLogsReply__Output } from './generated/cei/v1/ProcessLogsReply.js';
import type { LogEntry } from './engines/process-log.js';
import type { ProcessTimer__Output } from './generated/cei/v1/ProcessTimer.js';
import type { TimerRecord, TimerSpec } from './actors/dispatcher/protocol.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';
import { timerIn, timerOut } from './api/process-timer-proto.js';

export function definitionIn(d: ProcessDefinition__Output): ProcessDefinition {
  return {
    id: d.id,
    type: d.type,
    executable: JSON.parse(d.executable_json || '{}'),
    config: JSON.parse(d.config_json || '{}'),
    ...(d.description ? { description: d.description } : {}),
  };
}

export function processIn(p: ProcessInfo__Output): ProcessRecord {
  const out: ProcessRecord = {
    upid: p.upid,
    definitionId: p.definition_id,
    definition: definitionIn(p.definition!),
    configuration: JSON.parse(p.configuration_json || '{}'),
    constraints: JSON.parse(p.constraints_json || '{}'),
    queueingMode: p.queueing_mode as QueueingMode,
    restartMode: p.restart_mode as RestartMode,
    subscribers: p.subscribers,
    state: p.state as ProcessState,
    round: p.round,
    starts: p.starts,
    createdAt: Number(p.created_ms),
    stateChangedAt: Number(p.state_changed_ms),
  };
  if (p.name) out.name = p.name;
  if (p.execution_engine) out.executionEngine = p.execution_engine;
  if (p.node_exclusive) out.nodeExclusive = p.node_exclusive;
  if (p.agent_id) out.assigned = { agentId: p.agent_id, nodeId: p.node_id };
  if (p.hostname) out.hostname = p.hostname;
  if (Number(p.last_launch_ms) > 0) out.lastLaunchAt = Number(p.last_launch_ms);
  if (p.last_error) out.lastError = p.last_error;
  return out;
}

export interface DispatcherStatusView {
  booting: boolean;
  queued: number;
  agents: Array<{ agentId: string; nodeId: string; engineType: string; slots: number; used: number; health: string; retiring: boolean; lastHeardAt: number; properties: Record<string, unknown> }>;
  capacity: Array<{ engineType: string; wanted: number; retire: string[]; applied: boolean; subscribed: boolean; lastError?: string }>;
}

function statusIn(s: DispatcherStatus__Output): DispatcherStatusView {
  return {
    booting: s.booting,
    queued: s.queued,
    agents: s.agents.map((a) => ({
      agentId: a.agent_id,
      nodeId: a.node_id,
      engineType: a.engine_type,
      slots: a.slots,
      used: a.used,
      health: a.health,
      retiring: a.retiring,
      lastHeardAt: Number(a.last_heard_ms),
      properties: JSON.parse(a.properties_json || '{}'),
    })),
    capacity: s.capacity.map((c) => ({
      engineType: c.engine_type,
      wanted: c.wanted,
      retire: c.retire,
      applied: c.applied,
      subscribed: c.subscribed,
      ...(c.last_error ? { lastError: c.last_error } : {}),
    })),
  };
}

/** A definition as the service takes it: executable and config as JSON. */
function definitionOut(d: { id: string; type: string; executable: unknown; config?: unknown; description?: string }) {
  return {
    id: d.id,
    type: d.type,
    executable_json: JSON.stringify(d.executable ?? null),
    config_json: d.config === undefined ? '' : JSON.stringify(d.config),
    description: d.description ?? '',
  };
}

/** What `schedule` takes; constraints and configuration are checked by the dispatcher. */
export type ScheduleArgs = Omit<ScheduleRequest, 'queueingMode' | 'restartMode'> & { queueingMode?: string; restartMode?: string };

export class DispatcherClient {
  /** The generated client, for calls this class does not wrap. */
  readonly raw: DispatcherGrpcClient;

  /** `channel` shares an existing client's connection (e.g. CeiClient's `actors.getChannel()`). */
  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.ProcessDispatcher(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  async createDefinition(d: Parameters<typeof definitionOut>[0], deadlineMs?: number): Promise<ProcessDefinition> {
    return definitionIn(await unary<ProcessDefinition__Output>((o, cb) => this.raw.CreateDefinition(definitionOut(d), o, cb), deadlineMs));
  }

  async updateDefinition(d: Parameters<typeof definitionOut>[0], deadlineMs?: number): Promise<ProcessDefinition> {
    return definitionIn(await unary<ProcessDefinition__Output>((o, cb) => this.raw.UpdateDefinition(definitionOut(d), o, cb), deadlineMs));
  }

  async removeDefinition(id: string, deadlineMs?: number): Promise<{ removed: string }> {
    return unary((o, cb) => this.raw.RemoveDefinition({ id }, o, cb), deadlineMs);
  }

  async describeDefinition(id: string, deadlineMs?: number): Promise<ProcessDefinition> {
    return definitionIn(await unary<ProcessDefinition__Output>((o, cb) => this.raw.DescribeDefinition({ id }, o, cb), deadlineMs));
  }

  async listDefinitions(deadlineMs?: number): Promise<ProcessDefinition[]> {
    const r = await unary<{ definitions: ProcessDefinition__Output[] }>((o, cb) => this.raw.ListDefinitions({}, o, cb), deadlineMs);
    return r.definitions.map(definitionIn);
  }

  async schedule(args: ScheduleArgs, deadlineMs?: number): Promise<ProcessRecord> {
    const req = {
      upid: args.upid,
      definition_id: args.definitionId,
      configuration_json: args.configuration === undefined ? '' : JSON.stringify(args.configuration),
      constraints_json: args.constraints === undefined ? '' : JSON.stringify(args.constraints),
      queueing_mode: args.queueingMode ?? '',
      restart_mode: args.restartMode ?? '',
      execution_engine: args.executionEngine ?? '',
      node_exclusive: args.nodeExclusive ?? '',
      subscribers: args.subscribers ?? [],
      name: args.name ?? '',
    };
    return processIn(await unary<ProcessInfo__Output>((o, cb) => this.raw.Schedule(req, o, cb), deadlineMs));
  }

  async describe(upid: string, deadlineMs?: number): Promise<ProcessRecord> {
    return processIn(await unary<ProcessInfo__Output>((o, cb) => this.raw.DescribeProcess({ upid }, o, cb), deadlineMs));
  }

  async list(states: string[] = [], deadlineMs?: number): Promise<ProcessRecord[]> {
    const r = await unary<{ processes: ProcessInfo__Output[] }>((o, cb) => this.raw.ListProcesses({ states }, o, cb), deadlineMs);
    return r.processes.map(processIn);
  }

  async terminate(upid: string, deadlineMs?: number): Promise<ProcessRecord> {
    return processIn(await unary<ProcessInfo__Output>((o, cb) => this.raw.Terminate({ upid }, o, cb), deadlineMs));
  }

  async restart(upid: string, deadlineMs?: number): Promise<ProcessRecord> {
    return processIn(await unary<ProcessInfo__Output>((o, cb) => this.raw.Restart({ upid }, o, cb), deadlineMs));
  }

  /** Resolves once the process is in one of `states`; the call's own deadline is the wait plus a margin. */
  async wait(upid: string, states: string[], timeoutMs: number): Promise<ProcessRecord> {
    return processIn(await unary<ProcessInfo__Output>((o, cb) => this.raw.Wait({ upid, states, timeout_ms: timeoutMs }, o, cb), timeoutMs + 5_000));
  }

  async status(deadlineMs?: number): Promise<DispatcherStatusView> {
    return statusIn(await unary<DispatcherStatus__Output>((o, cb) => this.raw.DescribeDispatcher({}, o, cb), deadlineMs));
  }

  /** Starts (`booting`, optionally recovering every live process) or ends the system boot. */
  async setSystemBoot(booting: boolean, recover = false, deadlineMs?: number): Promise<{ booting: boolean; recovered: string[] }> {
    return unary((o, cb) => this.raw.SetSystemBoot({ booting, recover }, o, cb), deadlineMs);
  }

  async createTimer(t: TimerSpec, deadlineMs?: number): Promise<TimerRecord> {
    // next and runs are the dispatcher's to fill: the request's are ignored.
    const req = timerOut({ ...t, next: 0, runs: 0 });
    return timerIn(await unary<ProcessTimer__Output>((o, cb) => this.raw.CreateTimer(req, o, cb), deadlineMs));
  }

  async cancelTimer(name: string, deadlineMs?: number): Promise<{ cancelled: string }> {
    return unary((o, cb) => this.raw.CancelTimer({ name }, o, cb), deadlineMs);
  }

  async listTimers(deadlineMs?: number): Promise<TimerRecord[]> {
    const r = await unary<{ timers: ProcessTimer__Output[] }>((o, cb) => this.raw.ListTimers({}, o, cb), deadlineMs);
    return r.timers.map(timerIn);
  }

  /** The process's output lines with a seq above `since`, from the worker that runs or ran it. */
  async logs(upid: string, since = 0, deadlineMs?: number): Promise<ProcessLogs> {
    const r = await unary<ProcessLogsReply__Output>((o, cb) => this.raw.ProcessLogs({ upid, since }, o, cb), deadlineMs);
    return {
      upid: r.upid,
      nodeId: r.node_id,
      round: Number(r.round),
      lines: r.lines.map((l) => ({ seq: Number(l.seq), at: l.at_ms, source: l.source as LogEntry['source'], line: l.line })),
      dropped: Number(r.dropped),
    };
  }

  close(): void {
    this.raw.close();
  }
}

/** A timer as the proto carries it (the service's replies and the client's requests alike). */
export interface ProcessLogs {
  upid: string;
  nodeId: string;
  round: number;
  lines: LogEntry[];
  dropped: number;
}
