/**
 * The node-local half of the execution-engine agent: the Engine objects of this worker's processes
 * and their transforms' pumps. They are live processes and threads, so they cannot be actor state;
 * the agent's state says what should run, the runner is what runs, and after a worker restart the
 * runner is empty while the state still names processes (the agent reports those as failed).
 *
 * Contract with the agent:
 * - The agent calls launch/terminate/forget from its turns; they return at once and the work goes on
 *   outside the turn. Each outcome comes back as a tell `{engine: {upid, round, event, ...}}` to the
 *   agent through the node's router, with a message id unique to this runner, so a tell retried by
 *   the transport is applied once.
 * - Calls are idempotent: a turn that crashed and is retried calls again with the same (upid, round).
 *   A launch of a round already known re-tells its last outcome, in case the first tell reached a turn
 *   whose state was then lost.
 * - Work on one upid is serialized (one promise chain per upid): a newer round starts only after the
 *   older one's process is gone, and a terminate waits for a start in progress.
 */
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { errorMessage } from '../../errors.js';
import { createEngine, describeExit, isNormalExit, type Engine, type EngineExit } from '../../engines/engine.js';
import type { ProcessLog } from '../../engines/process-log.js';
import type { ActorRef } from '../../runtime/ref.js';
import type { RoleEnv } from '../role-env.js';
import type { EeAgentOptions } from './options.js';
import {
  ExecExecutableSchema,
  JsExecutableSchema,
  TransformConfigSchema,
  type AgentDefinition,
  type EngineEvent,
  type TransformConfig,
} from './protocol.js';
import { Pump } from './pump.js';
import { askRole } from '../role-reply.js';
import { streamRef } from '../stream.js';

/** Keys of a process's configuration that are the pump's or the dispatcher's, not the engine's. */
const NOT_ENGINE_CONFIG = new Set(['inputs', 'output', 'batch', 'from', 'sink', 'result', 'process']);

/** The built-in transforms: definition `type` -> the js module that implements it. */
export const BUILTIN_TRANSFORMS: Readonly<Record<string, URL>> = {
  // From source (vitest, tsx) this file is .ts and so is the module; from dist/ both are .js.
  'window-average': new URL(`../../transforms/window-average.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url),
};

interface Live {
  upid: string;
  round: number;
  agent: ActorRef;
  engine: Engine | undefined;
  pump: Pump | undefined;
  /** starting -> running -> ended, or stopping -> ended after a terminate. */
  phase: 'starting' | 'running' | 'stopping' | 'ended';
  /** The last outcome told, re-told on a repeated launch. */
  told: EngineEvent | undefined;
  /** Why the pump gave up, when it did: the reason the run failed. */
  fatal?: string;
  /** A one-off process's `result` stream: its result is published there when it exits 0. */
  result?: string;
}

/** What the runner needs to build an engine for a definition. */
export interface EngineSpecOf {
  kind: 'exec' | 'js';
  spec: Parameters<typeof createEngine>[1];
}

/**
 * The engine a definition asks for; throws (with a reason for lastError) when the definition cannot
 * describe one. An exec program that does not say its protocol speaks line-delimited JSON when it
 * is a transform (fed messages) and none otherwise: a plain program would never answer the handshake.
 */
export function engineSpec(definition: AgentDefinition, transform = false): EngineSpecOf {
  switch (definition.type) {
    case 'exec': {
      const r = ExecExecutableSchema.safeParse(definition.executable);
      if (!r.success) throw new Error(`definition "${definition.id}": exec needs executable {argv: [program, ...args], env?, cwd?, protocol?}`);
      return { kind: 'exec', spec: { ...r.data, protocol: r.data.protocol ?? (transform ? 'jsonl' : 'none') } };
    }
    case 'js': {
      const r = JsExecutableSchema.safeParse(definition.executable);
      if (!r.success) throw new Error(`definition "${definition.id}": js needs executable {module: path or file URL}`);
      const module = r.data.module;
      const url = module.startsWith('file:') ? module : pathToFileURL(isAbsolute(module) ? module : resolvePath(module)).href;
      return { kind: 'js', spec: { module: url } };
    }
    default: {
      const builtin = Object.hasOwn(BUILTIN_TRANSFORMS, definition.type) ? BUILTIN_TRANSFORMS[definition.type] : undefined;
      if (!builtin) throw new Error(`definition "${definition.id}": unknown type "${definition.type}" (exec, js, ${Object.keys(BUILTIN_TRANSFORMS).join(', ')})`);
      return { kind: 'js', spec: { module: builtin.href } };
    }
  }
}

/** The transform part of a configuration, undefined for a plain process; throws when it is malformed. */
export function transformOf(configuration: Record<string, unknown>): TransformConfig | undefined {
  if (configuration['inputs'] === undefined && configuration['output'] === undefined) return undefined;
  const r = TransformConfigSchema.safeParse(configuration);
  if (!r.success) throw new Error(`a transform's configuration needs inputs: [stream, ...] and output: stream (batch?, from?): ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

/** What the engine is given as its config: the configuration without the pump's and dispatcher's keys. */
export function engineConfigOf(configuration: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(configuration).filter(([k]) => !NOT_ENGINE_CONFIG.has(k)));
}

/** The pid an exec engine logged at its start ("started ... (pid N)"), for reports and operators. */
function pidOf(log: ProcessLog): number | undefined {
  for (const e of log.lines()) {
    const m = e.source === 'engine' ? /\(pid (\d+)\)$/.exec(e.line) : null;
    if (m) return Number(m[1]);
  }
  return undefined;
}

export class Runner {
  private readonly live = new Map<string, Live>();
  private readonly chains = new Map<string, Promise<void>>();
  /** The log of each upid's latest round, kept after it ended until forget, for `cei process logs`. */
  private readonly logs = new Map<string, { round: number; log: ProcessLog }>();
  private readonly nonce = Math.random().toString(36).slice(2, 10);
  private counter = 0;
  private closed = false;

  constructor(
    private readonly env: RoleEnv,
    private readonly options: EeAgentOptions,
  ) {}

  /**
   * Whether this runner took the round in hand (running, or ended with its outcome told or on its
   * way); false after a worker restart.
   */
  knows(upid: string, round: number): boolean {
    const l = this.live.get(upid);
    return l !== undefined && l.round === round;
  }

  /** The log of the upid's latest round on this worker. */
  logOf(upid: string): { round: number; log: ProcessLog } | undefined {
    return this.logs.get(upid);
  }

  /** Starts the round (stopping an older round of the upid first); the outcome is told to `agent`. */
  launch(agent: ActorRef, upid: string, round: number, definition: AgentDefinition, configuration: Record<string, unknown>): void {
    const known = this.live.get(upid);
    if (known && known.round === round) {
      if (known.told) this.tell(known, known.told);
      return;
    }
    if (known && known.round > round) return;
    const l: Live = { upid, round, agent, engine: undefined, pump: undefined, phase: 'starting', told: undefined };
    this.live.set(upid, l);
    this.serial(upid, async () => {
      if (known) await this.stopLive(known, `replaced by round ${round}`);
      if (this.live.get(upid) !== l || l.phase !== 'starting') return; // replaced or terminated while queued
      await this.start(l, definition, configuration);
    });
  }

  /** Stops the round's process (gracefully, then killed) and tells `stopped` once it is gone. */
  terminate(agent: ActorRef, upid: string, round: number): void {
    const l = this.live.get(upid);
    if (!l || l.round !== round) {
      // Nothing of this round runs here (never launched, or lost with a worker restart): it is gone already.
      this.tell({ upid, round, agent }, { upid, round, event: 'stopped' });
      return;
    }
    const wasLive = l.phase !== 'ended';
    if (l.phase === 'starting' || l.phase === 'running') l.phase = 'stopping';
    // A start may be waiting on a stream that does not answer: stopping the pump ends that wait.
    void l.pump?.stop();
    this.serial(upid, async () => {
      if (wasLive) await this.stopLive(l, 'terminated');
      this.tell(l, { upid, round, event: 'stopped' });
    });
  }

  /** Drops what is left of an ended round (its log). */
  forget(upid: string, round: number): void {
    const l = this.live.get(upid);
    if (l && l.round === round && l.phase === 'ended') this.live.delete(upid);
    const log = this.logs.get(upid);
    if (log && log.round === round) this.logs.delete(upid);
  }

  /** Stops every process (node shutdown, tests). No outcome is told. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live.values()].map((l) => this.stopLive(l, 'the worker is stopping')));
    await Promise.all([...this.chains.values()]);
  }

  private serial(upid: string, work: () => Promise<void>): void {
    const prev = this.chains.get(upid) ?? Promise.resolve();
    const next = prev
      .then(work)
      .catch((err: unknown) => this.env.log.error({ upid, err: errorMessage(err) }, 'ee-agent runner: work on a process failed'))
      .finally(() => {
        if (this.chains.get(upid) === next) this.chains.delete(upid);
      });
    this.chains.set(upid, next);
  }

  private async start(l: Live, definition: AgentDefinition, configuration: Record<string, unknown>): Promise<void> {
    let engine: Engine;
    let transform: TransformConfig | undefined;
    try {
      transform = transformOf(configuration);
      const { kind, spec } = engineSpec(definition, transform !== undefined);
      engine = createEngine(kind, spec, this.options.engine);
    } catch (err) {
      l.phase = 'ended';
      this.tell(l, { upid: l.upid, round: l.round, event: 'failed', error: errorMessage(err) });
      return;
    }
    l.engine = engine;
    if (!transform && typeof configuration['result'] === 'string') l.result = configuration['result'];
    this.logs.set(l.upid, { round: l.round, log: engine.log });
    const config = engineConfigOf(configuration);
    try {
      if (transform) {
        const pump = new Pump(l.upid, transform, engine, config, {
          service: () => this.env.service(),
          clock: this.env.clock,
          options: this.options.pump,
          onBatchError: (error, failures) => this.pumpError(l, error, failures),
          onFatal: (error) => this.pumpFatal(l, error),
        });
        l.pump = pump;
        await pump.start();
      } else {
        await engine.start(config, undefined);
      }
    } catch (err) {
      await engine.stop(0).catch(() => undefined);
      if (l.phase === 'starting') {
        l.phase = 'ended';
        this.tell(l, { upid: l.upid, round: l.round, event: 'failed', error: errorMessage(err), exit: await engine.exited });
      }
      return;
    }
    if (l.phase !== 'starting') return; // terminated during the start: the terminate stops it
    l.phase = 'running';
    const pid = pidOf(engine.log);
    this.tell(l, { upid: l.upid, round: l.round, event: 'running', ...(pid !== undefined && { pid }) });
    void engine.exited.then((exit) => this.ended(l, exit));
  }

  /** The process ended while running: by itself, or stopped by its pump's failure. */
  private async ended(l: Live, exit: EngineExit): Promise<void> {
    if (l.phase !== 'running') return; // a stop we asked for: its outcome is told by terminate
    l.phase = 'ended';
    void l.pump?.stop();
    const normal = isNormalExit(exit) && l.fatal === undefined;
    let error = normal ? undefined : (l.fatal ?? exit.reason ?? describeExit(exit));
    if (normal && l.result !== undefined && l.engine) {
      error = await this.publishResult(l, l.result, l.engine.log, exit);
    }
    this.tell(l, { upid: l.upid, round: l.round, event: error === undefined ? 'exited' : 'failed', exit, ...(error !== undefined && { error }) });
  }

  /**
   * A one-off process's result, published to its `result` stream once it exited normally: the last
   * line it wrote on stdout (as JSON when it is JSON) and its stdout lines. Published as producer
   * <upid> with seq = round, so a repeat of the same round is dropped. Undefined, or why it failed.
   */
  private async publishResult(l: Live, stream: string, log: ProcessLog, exit: EngineExit): Promise<string | undefined> {
    const stdout = log.lines().filter((e) => e.source === 'stdout').map((e) => e.line);
    const last = [...stdout].reverse().find((line) => line.trim() !== '');
    let result: unknown = last ?? null;
    try {
      if (last !== undefined) result = JSON.parse(last);
    } catch {
      // Not JSON: the line as it is.
    }
    const data = { upid: l.upid, round: l.round, exit_code: exit.code, result, stdout };
    try {
      await askRole(this.env.service(), streamRef(stream), { publish: { messages: [{ data }], producer: l.upid, seq: l.round } }, this.options.pump.askTimeoutMs);
      return undefined;
    } catch (err) {
      return `exited 0 but its result could not be published to stream ${stream}: ${errorMessage(err)}`;
    }
  }

  private pumpError(l: Live, error: string, failures: number): void {
    if (l.phase !== 'running') return;
    this.send(l.agent, { pump: { upid: l.upid, round: l.round, error, failures } }, `pump:${l.upid}:${l.round}:${failures}`);
  }

  /** The pump cannot go on (engine gone or not answering): the process is stopped and reported failed. */
  private pumpFatal(l: Live, error: string): void {
    if (l.phase !== 'running') return;
    l.fatal = `transform pump failed: ${error}`;
    void l.engine?.stop(0);
  }

  private async stopLive(l: Live, why: string): Promise<void> {
    if (l.phase === 'ended' && !l.engine) return;
    if (l.phase !== 'ended') l.phase = 'stopping';
    l.engine?.log.append(`agent: stopping (${why})`, 'engine');
    await l.pump?.stop();
    await l.engine?.stop();
    l.phase = 'ended';
  }

  private tell(l: Pick<Live, 'upid' | 'round' | 'agent'>, event: EngineEvent): void {
    if (this.live.get(l.upid) === l) (l as Live).told = event;
    this.send(l.agent, { engine: event }, `engine:${l.upid}:${l.round}:${event.event}`);
  }

  private send(agent: ActorRef, message: unknown, what: string): void {
    if (this.closed) return;
    const messageId = `${agent.type}/${agent.id}:${this.nonce}:${++this.counter}:${what}`;
    this.env
      .service()
      .tell(agent, message, { messageId })
      .catch((err: unknown) => this.env.log.warn({ agent: `${agent.type}/${agent.id}`, what, err: errorMessage(err) }, 'ee-agent runner: could not tell the agent'));
  }
}
