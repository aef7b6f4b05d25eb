/**
 * The public ProcessDispatcher service. It holds no dispatching logic: it turns each request into a
 * message of `dispatcher/main`, checks it with the dispatcher's own parser (so bad input is refused
 * here, naming the field, without a hop), asks the actor through the ActorService (the cluster's
 * router, which finds its owner from any node), and maps the reply to the proto.
 *
 * Wait is done here, not in the actor: it polls DescribeProcess every WAIT_POLL_MS until the process
 * is in a wanted state, bounded by the request's timeout and the call's deadline, so a waiting
 * client never holds the dispatcher's turn.
 */
import type { ProcessDispatcherHandlers } from '../generated/cei/v1/ProcessDispatcher.js';
import type { ProcessDefinition as DefinitionProto } from '../generated/cei/v1/ProcessDefinition.js';
import type { ProcessInfo } from '../generated/cei/v1/ProcessInfo.js';
import type { DispatcherStatus as StatusProto } from '../generated/cei/v1/DispatcherStatus.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import { askRole } from '../actors/role-reply.js';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { LogsReply } from '../actors/ee-agent/protocol.js';
import type { ProcessDefinition, ProcessRecord } from '../actors/dispatcher/core.js';
import { isFinal, isProcessState, type ProcessState } from '../actors/dispatcher/states.js';
import { DISPATCHER_REF, agentRef, parseDispatcherMessage, type DispatcherAsk, type DispatcherReplies, type DispatcherStatus } from '../actors/dispatcher/protocol.js';
import { timerOut } from './process-timer-proto.js';
import { handlerFactory, jsonField, remainingMs, type UnaryCall } from './unary.js';

export interface DispatcherServiceOptions {
  /** Largest accepted JSON field (bytes). */
  maxPayloadBytes: number;
}

/** How often Wait reads the process. */
export const WAIT_POLL_MS = 100;
/** Wait's bound when the request gives none. */
export const WAIT_DEFAULT_MS = 30_000;

export function definitionOut(d: ProcessDefinition): DefinitionProto {
  return {
    id: d.id,
    type: d.type,
    executable_json: JSON.stringify(d.executable),
    config_json: JSON.stringify(d.config),
    description: d.description ?? '',
  };
}

export function processOut(p: ProcessRecord): ProcessInfo {
  return {
    upid: p.upid,
    name: p.name ?? '',
    definition_id: p.definitionId,
    definition: definitionOut(p.definition),
    configuration_json: JSON.stringify(p.configuration),
    constraints_json: JSON.stringify(p.constraints),
    queueing_mode: p.queueingMode,
    restart_mode: p.restartMode,
    execution_engine: p.executionEngine ?? '',
    node_exclusive: p.nodeExclusive ?? '',
    subscribers: p.subscribers,
    state: p.state,
    round: p.round,
    starts: p.starts,
    agent_id: p.assigned?.agentId ?? '',
    node_id: p.assigned?.nodeId ?? '',
    hostname: p.hostname ?? '',
    created_ms: p.createdAt,
    state_changed_ms: p.stateChangedAt,
    last_launch_ms: p.lastLaunchAt ?? 0,
    last_error: p.lastError ?? '',
  };
}

function statusOut(s: DispatcherStatus): StatusProto {
  return {
    booting: s.booting,
    agents: s.agents.map((a) => ({
      agent_id: a.agentId,
      node_id: a.nodeId,
      engine_type: a.engineType,
      slots: a.slots,
      used: a.assigned.length,
      health: a.health,
      retiring: a.retiring,
      last_heard_ms: a.lastHeardAt,
      properties_json: JSON.stringify(a.properties),
    })),
    queued: s.queue.length,
    capacity: Object.entries(s.capacity)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([engineType, c]) => ({
        engine_type: engineType,
        wanted: c.wanted,
        retire: c.retire,
        applied: c.applied,
        subscribed: c.subscribed,
        last_error: c.lastError ?? '',
      })),
  };
}

/** States from a request; an unknown one is INVALID_ARGUMENT naming the field. */
function statesOf(states: string[], field: string): ProcessState[] {
  for (const s of states) if (!isProcessState(s)) throw new InvalidArgumentError(`${field}: "${s}" is not a process state`);
  return states as ProcessState[];
}

export function dispatcherService(system: ActorService, options: DispatcherServiceOptions, log: Logger): ProcessDispatcherHandlers {
  const optionalJson = (text: string, field: string): unknown => (text ? jsonField(text, field, options.maxPayloadBytes) : undefined);

  const ask = <Op extends DispatcherAsk>(call: UnaryCall, op: Op, body: unknown, timeoutMs = remainingMs(call)): Promise<DispatcherReplies[Op]> =>
    askRole<DispatcherReplies[Op]>(system, DISPATCHER_REF, parseDispatcherMessage({ [op]: body }), timeoutMs);

  const definitionIn = (d: DefinitionProto): unknown => ({
    id: d.id,
    type: d.type,
    executable: jsonField(d.executable_json ?? '', 'executable_json', options.maxPayloadBytes),
    ...(d.config_json ? { config: optionalJson(d.config_json, 'config_json') } : {}),
    ...(d.description ? { description: d.description } : {}),
  });

  const h = handlerFactory(log);

  return {
    CreateDefinition: h('CreateDefinition', async (req, call) => definitionOut(await ask(call, 'createDefinition', definitionIn(req)))),
    UpdateDefinition: h('UpdateDefinition', async (req, call) => definitionOut(await ask(call, 'updateDefinition', definitionIn(req)))),
    RemoveDefinition: h('RemoveDefinition', async (req, call) => ask(call, 'removeDefinition', { id: req.id })),
    DescribeDefinition: h('DescribeDefinition', async (req, call) => definitionOut(await ask(call, 'describeDefinition', { id: req.id }))),
    ListDefinitions: h('ListDefinitions', async (_req, call) => ({ definitions: (await ask(call, 'listDefinitions', {})).definitions.map(definitionOut) })),

    Schedule: h('Schedule', async (req, call) => {
      const configuration = optionalJson(req.configuration_json, 'configuration_json');
      const constraints = optionalJson(req.constraints_json, 'constraints_json');
      const body = {
        upid: req.upid,
        definitionId: req.definition_id,
        ...(configuration !== undefined && { configuration }),
        ...(constraints !== undefined && { constraints }),
        ...(req.queueing_mode !== '' && { queueingMode: req.queueing_mode }),
        ...(req.restart_mode !== '' && { restartMode: req.restart_mode }),
        ...(req.execution_engine !== '' && { executionEngine: req.execution_engine }),
        ...(req.node_exclusive !== '' && { nodeExclusive: req.node_exclusive }),
        ...(req.subscribers.length > 0 && { subscribers: req.subscribers }),
        ...(req.name !== '' && { name: req.name }),
      };
      return processOut(await ask(call, 'schedule', body));
    }),
    DescribeProcess: h('DescribeProcess', async (req, call) => processOut(await ask(call, 'describe', { upid: req.upid }))),
    ListProcesses: h('ListProcesses', async (req, call) => {
      const states = statesOf(req.states, 'states');
      const r = await ask(call, 'list', states.length > 0 ? { states } : {});
      return { processes: r.processes.map(processOut) };
    }),
    Terminate: h('Terminate', async (req, call) => processOut(await ask(call, 'terminate', { upid: req.upid }))),
    Restart: h('Restart', async (req, call) => processOut(await ask(call, 'restart', { upid: req.upid }))),
    Wait: h('Wait', async (req, call) => {
      const states = statesOf(req.states, 'states');
      if (states.length === 0) throw new InvalidArgumentError('states: give at least one state to wait for');
      const timeoutMs = req.timeout_ms > 0 ? req.timeout_ms : WAIT_DEFAULT_MS;
      const callLeft = remainingMs(call);
      const deadline = Date.now() + Math.min(timeoutMs, callLeft ?? Infinity);
      for (;;) {
        // Each read gets the call's own bound, not what is left of the wait: a read cut short would
        // hide the state the wait timed out in.
        const p = await ask(call, 'describe', { upid: req.upid });
        if (states.includes(p.state)) return processOut(p);
        if (isFinal(p.state)) throw new FailedPreconditionError(`process "${req.upid}" is ${p.state} (final), not ${states.join(' or ')}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new DeadlineExceededError(`process "${req.upid}" is ${p.state} after ${timeoutMs} ms, not ${states.join(' or ')}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(WAIT_POLL_MS, left)));
      }
    }),
    DescribeDispatcher: h('DescribeDispatcher', async (_req, call) => statusOut(await ask(call, 'status', true))),
    SetSystemBoot: h('SetSystemBoot', async (req, call) => ask(call, 'boot', { booting: req.booting, recover: req.recover })),
    CreateTimer: h('CreateTimer', async (req, call) => {
      const spec: Record<string, unknown> = { name: req.name, definitionId: req.definition_id };
      const configuration = optionalJson(req.configuration_json, 'configuration_json');
      if (configuration !== undefined) spec.configuration = configuration;
      const constraints = optionalJson(req.constraints_json, 'constraints_json');
      if (constraints !== undefined) spec.constraints = constraints;
      if (req.execution_engine) spec.executionEngine = req.execution_engine;
      if (req.at_ms > 0) spec.at = Math.round(req.at_ms);
      if (Number(req.every_ms) > 0) spec.every = Number(req.every_ms);
      if (req.count > 0) spec.count = req.count;
      return timerOut(await ask(call, 'timer', spec));
    }),
    CancelTimer: h('CancelTimer', async (req, call) => ask(call, 'cancelTimer', { name: req.name })),
    ListTimers: h('ListTimers', async (_req, call) => ({ timers: (await ask(call, 'listTimers', {})).timers.map(timerOut) })),
    ProcessLogs: h('ProcessLogs', async (req, call) => {
      const since = Number(req.since);
      const p = await ask(call, 'describe', { upid: req.upid });
      // The worker running it now; else (it ended) every agent known, since only its log remembers it.
      const nodes = p.assigned ? [p.assigned.nodeId] : [...new Set((await ask(call, 'status', true)).agents.map((a) => a.nodeId))];
      for (const nodeId of nodes) {
        const r = await askRole<LogsReply>(system, agentRef(nodeId), { logs: { upid: req.upid, since } }, remainingMs(call)).catch(() => undefined);
        if (!r || r.round === undefined) continue;
        return {
          upid: r.upid,
          node_id: nodeId,
          round: r.round,
          lines: r.lines.map((l) => ({ seq: l.seq, at_ms: l.at, source: l.source, line: l.line })),
          dropped: r.dropped,
        };
      }
      throw new NotFoundError(`no live worker holds the output of process "${req.upid}"`);
    }),
  };
}
