/**
 * The exec engine: an external program run as a child process that stays up between batches (see
 * engine.ts for the jsonl protocol). The program runs in its own process group so that stopping it
 * also stops what it spawned (a shell script's sleep, a Python pool), as supervisord's killasgroup
 * did for the original eeagent.
 *
 * Its own process group also means it outlives this process when this one dies without stopping it
 * (a SIGKILLed worker node): nothing else would end it, and a program that neither reads its stdin
 * nor writes its stdout (a `sleep`, a server) would run on, outside any slot, forever. So each program
 * gets a lifeline: a small `sh` in a group of its own whose stdin is a pipe from this process. Only
 * our death closes that pipe; the shell then sends the program's group SIGTERM and, after the stop
 * grace, SIGKILL. When the program ends normally, the lifeline is killed with it.
 *
 * Deadlines here run on real timers on purpose: they bound how long a real OS process may take,
 * which a fake clock could not make it do faster.
 */
import { errorMessage } from '../errors.js';
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  describeExit,
  EngineExitedError,
  EngineProcessError,
  EngineStartError,
  EngineStateError,
  EngineTimeoutError,
  type Engine,
  type EngineExit,
  type EngineInput,
  type EngineOptions,
  type EngineOutput,
  type EngineState,
  type ExecSpec,
} from './engine.js';
import { ProcessLog } from './process-log.js';

type RequestKind = 'start' | 'batch' | 'snapshot';

interface PendingRequest {
  kind: RequestKind;
  /** null for start, whose reply ("started") carries no id. */
  id: number | null;
  resolve(reply: ProtocolMessage): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** A stdout line that is a JSON object with a string "op": a protocol message, not process output. */
interface ProtocolMessage {
  op: string;
  id?: unknown;
  [key: string]: unknown;
}

/** After the process exits, how long to wait for its pipes to drain into the log before reporting the exit. */
const PIPE_DRAIN_MS = 250;

/**
 * The lifeline's script: `$1` is the program's pid (its group id), `$2` the grace in seconds. `read`
 * returns at EOF of stdin, which only the death of the engine's process causes (nothing is written).
 * Signals aimed at a terminal's or a worker's group do not reach it (it is detached); it is SIGKILLed
 * by the engine when the program ended.
 */
const LIFELINE_SCRIPT = `trap '' HUP INT TERM; read -r _; kill -TERM -"$1" 2>/dev/null || exit 0; sleep "$2"; kill -KILL -"$1" 2>/dev/null; exit 0`;

export class ExecEngine implements Engine {
  readonly log: ProcessLog;
  readonly exited: Promise<EngineExit>;
  private readonly spec: ExecSpec;
  private readonly options: EngineOptions;
  private readonly protocol: 'jsonl' | 'none';
  private state: EngineState = 'idle';
  private child: ChildProcessWithoutNullStreams | undefined;
  private exit: EngineExit | undefined;
  private resolveExited!: (exit: EngineExit) => void;
  /** In send order; replies come in the same order, but a timed-out request leaves early. */
  private pending: PendingRequest[] = [];
  private nextId = 1;
  private stopNote: string | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** Ends the program's group should this process die first (see the module header). */
  private lifeline: ChildProcess | undefined;

  constructor(spec: ExecSpec, options: EngineOptions) {
    this.spec = spec;
    this.options = options;
    this.protocol = spec.protocol ?? 'jsonl';
    this.log = new ProcessLog(options.log);
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  async start(config: unknown, checkpoint: unknown): Promise<void> {
    if (this.state !== 'idle') throw new EngineStateError(`start: engine is ${this.state}, not idle`, this.state);
    this.state = 'starting';
    const program = this.spec.argv[0]!;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(program, this.spec.argv.slice(1), {
        cwd: this.spec.cwd,
        env: { ...process.env, ...this.spec.env },
        stdio: 'pipe',
        detached: true,
      });
    } catch (err) {
      // spawn throws synchronously only for bad arguments (e.g. a NUL byte); ENOENT comes as an event.
      this.finish({ code: null, signal: null, reason: `could not spawn: ${errorMessage(err)}` });
      throw new EngineStartError(`cannot start ${program}: ${errorMessage(err)}`, { cause: err, exit: this.exit });
    }
    this.child = child;
    this.wire(child);

    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (err) => resolve(err));
    });
    if (spawned !== undefined) {
      this.finish({ code: null, signal: null, reason: `could not spawn: ${spawned.message}` });
      throw new EngineStartError(`cannot start ${program}: ${spawned.message}`, { cause: spawned, exit: this.exit });
    }
    this.log.append(`started ${this.spec.argv.join(' ')} (pid ${child.pid})`, 'engine');
    this.lifeline = startLifeline(child.pid!, this.options.stopGraceMs, (note) => this.log.append(note, 'engine'));

    try {
      if (this.protocol === 'jsonl') {
        await this.request('start', { op: 'start', config: config ?? null, checkpoint: checkpoint ?? null }, this.options.startTimeoutMs);
      } else {
        await this.aliveAfter(this.options.startGraceMs);
      }
    } catch (err) {
      if (this.exit === undefined) {
        // Alive but not answering: it cannot be used, and must not be left running.
        this.signalGroup('SIGKILL');
        await this.exited;
      }
      const exit = this.exit!;
      const stderr = this.log.tail(this.options.stderrTailLines, 'stderr');
      const why = err instanceof EngineExitedError ? describeExit(exit) + ' during start' : errorMessage(err);
      throw new EngineStartError(`cannot start ${program}: ${why}${stderr.length > 0 ? `; stderr: ${stderr.join(' | ')}` : ''}`, {
        cause: err,
        exit,
      });
    }
    if (this.state === 'starting') this.state = 'running';
  }

  async process(batch: EngineInput[]): Promise<EngineOutput[]> {
    this.assertProtocolRunning('process');
    const id = this.nextId++;
    const reply = await this.request('batch', { op: 'batch', id, messages: batch }, this.options.requestTimeoutMs);
    const outputs = reply['outputs'];
    if (!Array.isArray(outputs) || !outputs.every(isOutput)) {
      throw new EngineProcessError(`batch ${id}: the program answered with malformed outputs (want [{"data":...,"time"?:n}])`);
    }
    return outputs.map((o) => (typeof o.time === 'number' ? { data: o.data, time: o.time } : { data: o.data }));
  }

  async snapshot(): Promise<unknown> {
    this.assertProtocolRunning('snapshot');
    const id = this.nextId++;
    const reply = await this.request('snapshot', { op: 'snapshot', id }, this.options.requestTimeoutMs);
    return reply['state'] ?? null;
  }

  /**
   * jsonl: sends {"op":"stop"} and closes stdin; none: SIGTERM to the process group. Either way,
   * SIGKILL to the group once `graceMs` passed. Ending by a signal is reported as such in `exited`
   * even when stop() asked for it: the caller knows it asked.
   */
  async stop(graceMs = this.options.stopGraceMs): Promise<EngineExit> {
    if (this.state === 'idle') {
      this.finish({ code: null, signal: null, reason: 'stopped before it was started' });
      return this.exited;
    }
    if (this.state === 'exited' || this.state === 'stopping') return this.exited;
    this.state = 'stopping';
    this.stopNote = 'stopped';
    this.log.append(`stopping (grace ${graceMs} ms)`, 'engine');
    const child = this.child!;
    if (this.protocol === 'jsonl' && child.stdin.writable) {
      child.stdin.write(JSON.stringify({ op: 'stop' }) + '\n');
      child.stdin.end();
    } else {
      this.signalGroup('SIGTERM');
    }
    this.killTimer = setTimeout(() => {
      this.stopNote = `killed after ${graceMs} ms grace`;
      this.log.append(`did not stop within ${graceMs} ms: SIGKILL`, 'engine');
      this.signalGroup('SIGKILL');
    }, graceMs);
    return this.exited;
  }

  private wire(child: ChildProcessWithoutNullStreams): void {
    const stdout = createInterface({ input: child.stdout, crlfDelay: Infinity });
    stdout.on('line', (line) => this.onStdoutLine(line));
    const stderr = createInterface({ input: child.stderr, crlfDelay: Infinity });
    stderr.on('line', (line) => this.log.append(line, 'stderr'));
    // EPIPE after the program died: the exit handler reports that, with the exit code.
    child.stdin.on('error', (err) => this.log.append(`stdin: ${err.message}`, 'engine'));
    child.on('error', (err) => {
      if (child.pid !== undefined) this.log.append(`child process error: ${err.message}`, 'engine');
    });
    child.once('exit', (code, signal) => {
      const drained = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, PIPE_DRAIN_MS);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      // Replies and output written just before the exit are still in the pipes: read them first.
      void drained.then(() => {
        const base = describeExit({ code, signal });
        this.finish({ code, signal, reason: this.stopNote === undefined ? base : `${this.stopNote}; ${base}` });
      });
    });
  }

  private onStdoutLine(line: string): void {
    if (this.protocol === 'jsonl') {
      const msg = parseProtocolLine(line);
      if (msg !== undefined) {
        this.onReply(msg);
        return;
      }
    }
    this.log.append(line, 'stdout');
  }

  private onReply(msg: ProtocolMessage): void {
    let request: PendingRequest | undefined;
    if (msg.op === 'started' || (msg.op === 'error' && msg.id === undefined)) {
      request = this.pending[0]?.kind === 'start' ? this.pending[0] : undefined;
    } else if (msg.op === 'outputs' || msg.op === 'snapshot' || msg.op === 'error') {
      request = this.pending.find((p) => p.id === msg.id);
    } else {
      this.log.append(`unknown protocol message ignored: ${truncate(JSON.stringify(msg))}`, 'engine');
      return;
    }
    if (request === undefined) {
      this.log.append(`reply to no outstanding request ignored (late after a timeout?): ${truncate(JSON.stringify(msg))}`, 'engine');
      return;
    }
    this.settle(request);
    if (msg.op === 'error') {
      request.reject(new EngineProcessError(`${request.kind}${request.id === null ? '' : ` ${request.id}`}: ${String(msg['error'] ?? 'failed')}`));
      return;
    }
    const expected = request.kind === 'start' ? 'started' : request.kind === 'batch' ? 'outputs' : 'snapshot';
    if (msg.op !== expected) {
      request.reject(new EngineProcessError(`${request.kind} ${request.id}: the program answered "${msg.op}", want "${expected}"`));
      return;
    }
    request.resolve(msg);
  }

  private request(kind: RequestKind, message: Record<string, unknown>, timeoutMs: number): Promise<ProtocolMessage> {
    // Serialise before anything is queued, so a value JSON cannot carry fails this call alone.
    const line = JSON.stringify(message) + '\n';
    return new Promise<ProtocolMessage>((resolve, reject) => {
      const id = kind === 'start' ? null : (message['id'] as number);
      const request: PendingRequest = {
        kind,
        id,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.settle(request);
          reject(new EngineTimeoutError(`${kind}${id === null ? '' : ` ${id}`}: no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.pending.push(request);
      this.child!.stdin.write(line);
    });
  }

  private settle(request: PendingRequest): void {
    clearTimeout(request.timer);
    const i = this.pending.indexOf(request);
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** Resolves after `ms` if the program is still running; rejects with EngineExitedError if it ended first. */
  private aliveAfter(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new EngineExitedError(`program ${describeExit(exit)}`, exit));
      });
    });
  }

  private assertProtocolRunning(call: string): void {
    if (this.protocol !== 'jsonl') {
      throw new EngineStateError(`${call}: not a protocol process (protocol 'none' takes no messages)`, this.state);
    }
    if (this.exit !== undefined) throw new EngineExitedError(`${call}: the program ${this.exit.reason ?? describeExit(this.exit)}`, this.exit);
    if (this.state !== 'running') throw new EngineStateError(`${call}: engine is ${this.state}, not running`, this.state);
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const child = this.child;
    if (child?.pid === undefined || this.exit !== undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group may already be gone while the leader's exit is still being reported.
      child.kill(signal);
    }
  }

  private finish(exit: EngineExit): void {
    if (this.exit !== undefined) return;
    this.exit = exit;
    this.state = 'exited';
    clearTimeout(this.killTimer);
    // SIGKILL: closing its stdin would make it signal a group that is gone (or, its id reused, another).
    this.lifeline?.kill('SIGKILL');
    this.lifeline = undefined;
    this.log.append(`process ${exit.reason ?? describeExit(exit)}`, 'engine');
    for (const request of this.pending.splice(0)) {
      clearTimeout(request.timer);
      request.reject(new EngineExitedError(`${request.kind}: the program ${exit.reason ?? describeExit(exit)}`, exit));
    }
    this.resolveExited(exit);
  }
}

/** Starts the lifeline of the program `pid`; undefined (noted in the log) if `sh` cannot be run. */
function startLifeline(pid: number, graceMs: number, note: (line: string) => void): ChildProcess | undefined {
  try {
    const lifeline = spawn('/bin/sh', ['-c', LIFELINE_SCRIPT, 'cei-lifeline', String(pid), String(Math.max(1, Math.ceil(graceMs / 1000)))], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    lifeline.on('error', (err) => note(`lifeline: ${err.message}`));
    lifeline.stdin?.on('error', () => {});
    // Neither it nor its pipe may keep this process alive: the program's own pipes do while it runs.
    lifeline.unref();
    (lifeline.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return lifeline;
  } catch (err) {
    note(`lifeline: ${errorMessage(err)}`);
    return undefined;
  }
}

function parseProtocolLine(line: string): ProtocolMessage | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { op?: unknown }).op === 'string') {
      return value as ProtocolMessage;
    }
  } catch {
    // Output that merely starts with '{' is output.
  }
  return undefined;
}

function isOutput(value: unknown): value is EngineOutput {
  return typeof value === 'object' && value !== null && 'data' in value;
}


function truncate(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}
