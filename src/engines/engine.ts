/**
 * The contract between the execution-engine agent (one actor per worker) and the processes it runs.
 * An Engine wraps one long-lived process: it is started once, fed batches of messages, asked for a
 * snapshot of its state, and stopped. Two mechanisms sit behind it:
 *
 * - `exec` (exec-engine.ts): an external program (Python, a C binary, a shell script) run as a child
 *   process. With `protocol: 'jsonl'` it speaks line-delimited JSON on stdin/stdout:
 *
 *     agent -> program                                       program -> agent
 *     {"op":"start","config":C,"checkpoint":S|null}          {"op":"started"}
 *     {"op":"batch","id":N,"messages":[EngineInput...]}      {"op":"outputs","id":N,"outputs":[EngineOutput...]}
 *                                                            or {"op":"error","id":N,"error":"why"}
 *     {"op":"snapshot","id":N}                               {"op":"snapshot","id":N,"state":S}
 *     {"op":"stop"}                                          (exits 0)
 *
 *   Requests are answered in order. Any stdout line that is not a JSON object with an "op" is the
 *   program's own output and goes to its log, as do stderr lines. With `protocol: 'none'` it is a
 *   plain long-running program that takes no messages.
 *
 * - `js` (js-engine.ts): an ES module run in its own worker thread, driven through comlink with one
 *   call per batch. The module's contract:
 *
 *     export default function create(config, checkpoint) {       // checkpoint: a snapshot() or undefined
 *       return {
 *         process(messages) { return outputs; },                 // EngineInput[] -> EngineOutput[] (or a Promise)
 *         snapshot() { return state; },                          // JSON-serialisable
 *         stop() {},                                             // optional; may return a Promise
 *       };
 *     }
 *
 *   `create` may be async. Throwing in `process` fails that batch only; the instance stays usable,
 *   and must be as it was before the batch: a transform's pump then feeds the batch again one
 *   message at a time, to send only the message it throws on to dead letters.
 *
 * As in the original eeagent, the way a process ends decides its outcome: exit code 0 is a normal
 * exit, anything else (another code, a signal, a crash) is a failure (see isNormalExit).
 */
import { CeiError } from '../errors.js';
import { ExecEngine } from './exec-engine.js';
import { JsEngine } from './js-engine.js';
import type { ProcessLog, ProcessLogOptions } from './process-log.js';

/** One input message handed to a process. */
export interface EngineInput {
  stream: string;
  offset: number;
  time: number;
  data: unknown;
}

/** What a process produced from a batch, in order. */
export interface EngineOutput {
  data: unknown;
  time?: number;
}

/** How a process ended. `reason` says it in words (exit code, signal, crash message, "stopped"). */
export interface EngineExit {
  code: number | null;
  signal: string | null;
  reason?: string;
}

export interface Engine {
  /**
   * Starts the program/module; `checkpoint` is a snapshot() taken earlier (resume exactly there) or
   * undefined. Rejects with an EngineStartError if it cannot start (program not found, module fails
   * to load, exits at once). May be called once per engine.
   */
  start(config: unknown, checkpoint: unknown): Promise<void>;
  /**
   * Feeds a batch; resolves with the outputs the batch produced. Rejects with EngineProcessError if
   * the process fails that batch (the engine stays usable), EngineExitedError if the process died.
   * Batches may be queued without waiting; they are answered in the order they were sent.
   */
  process(batch: EngineInput[]): Promise<EngineOutput[]>;
  /** JSON-serialisable state such that start(config, snapshot) continues exactly from here. */
  snapshot(): Promise<unknown>;
  /** Stops gracefully within `graceMs` (default EngineOptions.stopGraceMs), then kills. Idempotent. */
  stop(graceMs?: number): Promise<EngineExit>;
  /** Resolves when the process ends by itself or is stopped (also when start failed). Never rejects. */
  readonly exited: Promise<EngineExit>;
  readonly log: ProcessLog;
}

/** Runs an external program. */
export interface ExecSpec {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Default 'jsonl'. */
  protocol?: 'jsonl' | 'none';
}

/** Runs an ES module in a worker thread. */
export interface JsSpec {
  /** Absolute path or file URL of an ES module. */
  module: string;
}

export type EngineKind = 'exec' | 'js';

/**
 * Lifecycle of every engine: idle -> starting -> running -> stopping -> exited, or straight to
 * exited from starting (start failed) or running (the process ended by itself). process() and
 * snapshot() are legal only while running.
 */
export type EngineState = 'idle' | 'starting' | 'running' | 'stopping' | 'exited';

export interface EngineOptions {
  /** `protocol: 'none'`: how long a program must stay alive for start to succeed (default 200 ms). */
  startGraceMs: number;
  /** Deadline for the start handshake (jsonl "started", the js module's create) (default 10 s). */
  startTimeoutMs: number;
  /** Deadline for each process()/snapshot() request (default 30 s). */
  requestTimeoutMs: number;
  /** stop()'s default grace before the process is killed (default 2 s). */
  stopGraceMs: number;
  /** How many trailing stderr lines a start failure quotes (default 5). */
  stderrTailLines: number;
  /** Bounds of the process log. */
  log: Partial<ProcessLogOptions>;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  startGraceMs: 200,
  startTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  stopGraceMs: 2_000,
  stderrTailLines: 5,
  log: {},
};

/** Short intervals for tests on a busy machine: still long enough for a cold node/python start. */
export const TEST_ENGINE_OPTIONS: EngineOptions = {
  startGraceMs: 150,
  startTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  stopGraceMs: 500,
  stderrTailLines: 5,
  log: {},
};

export function createEngine(kind: 'exec', spec: ExecSpec, options?: Partial<EngineOptions>): Engine;
export function createEngine(kind: 'js', spec: JsSpec, options?: Partial<EngineOptions>): Engine;
export function createEngine(kind: EngineKind, spec: ExecSpec | JsSpec, options?: Partial<EngineOptions>): Engine;
export function createEngine(kind: EngineKind, spec: ExecSpec | JsSpec, options: Partial<EngineOptions> = {}): Engine {
  const opts = { ...DEFAULT_ENGINE_OPTIONS, ...options };
  switch (kind) {
    case 'exec':
      if (!('argv' in spec) || !Array.isArray(spec.argv) || spec.argv.length === 0) {
        throw new EngineSpecError('exec engine needs a non-empty argv');
      }
      return new ExecEngine(spec, opts);
    case 'js':
      if (!('module' in spec) || typeof spec.module !== 'string' || spec.module === '') {
        throw new EngineSpecError('js engine needs a module path or file URL');
      }
      return new JsEngine(spec, opts);
    default: {
      const never: never = kind;
      throw new EngineSpecError(`unknown engine kind ${String(never)}`);
    }
  }
}

/** Exit code 0 and no signal: the process finished normally. Anything else is a failure. */
export function isNormalExit(exit: EngineExit): boolean {
  return exit.code === 0 && exit.signal === null;
}

/** Thrown by createEngine when the spec cannot describe a process. */
export class EngineSpecError extends CeiError {
  override name = 'EngineSpecError';
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** Thrown by start() when the process could not be brought up; `exit` says how it ended, if it ran. */
export class EngineStartError extends CeiError {
  override name = 'EngineStartError';
  readonly exit: EngineExit | undefined;
  constructor(message: string, options?: { cause?: unknown; exit?: EngineExit }) {
    super('FAILED_PRECONDITION', message, options);
    this.exit = options?.exit;
  }
}

/** Thrown by process()/snapshot() when the process reported that it failed this request; it is still running. */
export class EngineProcessError extends CeiError {
  override name = 'EngineProcessError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL', message, options);
  }
}

/** Thrown by a request that was outstanding, or made, when the process ended. */
export class EngineExitedError extends CeiError {
  override name = 'EngineExitedError';
  readonly exit: EngineExit;
  constructor(message: string, exit: EngineExit) {
    super('UNAVAILABLE', message);
    this.exit = exit;
  }
}

/** Thrown when a request got no answer in time; the process may still act on it. */
export class EngineTimeoutError extends CeiError {
  override name = 'EngineTimeoutError';
  constructor(message: string) {
    super('DEADLINE_EXCEEDED', message, { retryable: true });
  }
}

/** Thrown when a call is illegal in the engine's state or kind (process() on a 'none' program, start twice). */
export class EngineStateError extends CeiError {
  override name = 'EngineStateError';
  readonly state: EngineState;
  constructor(message: string, state: EngineState) {
    super('FAILED_PRECONDITION', message);
    this.state = state;
  }
}

/** Words for an exit, for errors and the log. */
export function describeExit(exit: Pick<EngineExit, 'code' | 'signal'>): string {
  if (exit.signal !== null) return `killed by ${exit.signal}`;
  if (exit.code !== null) return `exited with code ${exit.code}`;
  return 'ended';
}
