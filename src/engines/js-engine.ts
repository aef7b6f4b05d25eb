/**
 * The js engine: an ES module run in its own worker thread (js-engine-worker.ts), long-lived and
 * stateful, driven through comlink with one call per batch (see engine.ts for the module contract).
 * The module's console output reaches the process log through the worker's piped stdout/stderr.
 *
 * A comlink call to a worker that died never settles, so every call here races the worker's exit
 * and a deadline; deadlines run on real timers because they bound real work in another thread.
 *
 * A batch's round trip also brings back the module's snapshot after it (js-engine-worker.ts), so the
 * snapshot() that follows a process() answers from it without another call; the module's
 * snapshot() thus runs once per batch, whether or not it is asked for.
 */
import { errorMessage } from '../errors.js';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { releaseProxy, wrap, type Remote } from 'comlink';
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
  type JsSpec,
} from './engine.js';
import type { JsWorkerApi, ProcessReply, WorkerStats } from './js-engine-worker.js';
import { ProcessLog } from './process-log.js';

const require = createRequire(import.meta.url);
// See js-engine-worker.ts: comlink's node adapter is UMD only, and its d.ts disagrees with NodeNext about `default`.
const nodeEndpoint = require('comlink/dist/umd/node-adapter.js') as typeof import('comlink/dist/umd/node-adapter.js').default;

/** After the worker exits, how long to wait for its piped console output to reach the log. */
const PIPE_DRAIN_MS = 250;

export class JsEngine implements Engine {
  readonly log: ProcessLog;
  readonly exited: Promise<EngineExit>;
  private readonly spec: JsSpec;
  private readonly options: EngineOptions;
  private state: EngineState = 'idle';
  private worker: Worker | undefined;
  private remote: Remote<JsWorkerApi> | undefined;
  private exit: EngineExit | undefined;
  private resolveExited!: (exit: EngineExit) => void;
  private crash: Error | undefined;
  private stopNote: string | undefined;
  private stoppedGracefully = false;
  private calls = 0;
  /** The module's snapshot after the last batch, until snapshot() takes it or another batch starts. */
  private snapshotAfterBatch: { state: unknown } | undefined;
  /**
   * Rejecters of the calls in flight, failed together when the worker ends. (A per-call
   * `exited.then` would pile up one closure per batch for the life of the engine.)
   */
  private readonly inflight = new Set<(exit: EngineExit) => void>();

  constructor(spec: JsSpec, options: EngineOptions) {
    this.spec = spec;
    this.options = options;
    this.log = new ProcessLog(options.log);
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  /** comlink calls made to the worker so far (start, one per batch, snapshot, stop, stats not counted). */
  get callCount(): number {
    return this.calls;
  }

  async start(config: unknown, checkpoint: unknown): Promise<void> {
    if (this.state !== 'idle') throw new EngineStateError(`start: engine is ${this.state}, not idle`, this.state);
    this.state = 'starting';
    const { filename, options } = workerEntry();
    const worker = new Worker(filename, { ...options, stdout: true, stderr: true });
    this.worker = worker;
    this.wire(worker);
    this.remote = wrap<JsWorkerApi>(nodeEndpoint(worker));
    this.log.append(`started worker thread ${worker.threadId} for ${this.spec.module}`, 'engine');
    try {
      await this.call('start', (r) => r.start(this.spec.module, config, checkpoint ?? null), this.options.startTimeoutMs);
    } catch (err) {
      if (this.exit === undefined) {
        this.stopNote = 'start failed';
        await worker.terminate();
      }
      const exit = await this.exited;
      const why = err instanceof EngineExitedError ? `the worker ${exit.reason ?? describeExit(exit)} during start` : errorMessage(err);
      throw new EngineStartError(`cannot start ${this.spec.module}: ${why}`, { cause: err, exit });
    }
    if (this.state === 'starting') this.state = 'running';
  }

  async process(batch: EngineInput[]): Promise<EngineOutput[]> {
    this.assertRunning('process');
    this.snapshotAfterBatch = undefined;
    const reply: ProcessReply = await this.call('process', (r) => r.process(batch), this.options.requestTimeoutMs);
    this.snapshotAfterBatch = reply.snapshot;
    return reply.outputs;
  }

  async snapshot(): Promise<unknown> {
    this.assertRunning('snapshot');
    const taken = this.snapshotAfterBatch;
    if (taken !== undefined) {
      // Each snapshot is handed out once: a caller may keep or change what it got.
      this.snapshotAfterBatch = undefined;
      return taken.state;
    }
    return this.call('snapshot', (r) => r.snapshot(), this.options.requestTimeoutMs);
  }

  /** Counts kept inside the worker: how many process() round trips it served and messages it saw. */
  async stats(): Promise<WorkerStats> {
    this.assertRunning('stats');
    return this.race('stats', this.remote!.stats(), this.options.requestTimeoutMs);
  }

  /**
   * Calls the module's stop() (after any batch still running), then ends the thread. If that does
   * not finish within `graceMs` the thread is terminated anyway (which also interrupts a busy loop)
   * and `exited` reports a failure.
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
    try {
      await this.call('stop', (r) => r.stop(), graceMs);
      this.stoppedGracefully = true;
    } catch (err) {
      this.stopNote = `terminated: the module did not stop within ${graceMs} ms (${errorMessage(err)})`;
      this.log.append(this.stopNote, 'engine');
    }
    await this.worker!.terminate();
    return this.exited;
  }

  private wire(worker: Worker): void {
    const pipes: Promise<void>[] = [];
    for (const [stream, source] of [
      [worker.stdout, 'stdout'],
      [worker.stderr, 'stderr'],
    ] as const) {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => this.log.append(line, source));
      pipes.push(new Promise((resolve) => lines.once('close', resolve)));
    }
    worker.on('error', (err) => {
      this.crash = err;
      this.log.append(`worker crashed: ${err.stack ?? err.message}`, 'engine');
    });
    worker.once('exit', (code) => {
      const drained = Promise.race([Promise.all(pipes), new Promise((resolve) => setTimeout(resolve, PIPE_DRAIN_MS).unref())]);
      void drained.then(() => this.onExit(code));
    });
  }

  private onExit(code: number): void {
    this.remote?.[releaseProxy]();
    if (this.stoppedGracefully) {
      // terminate() always reports code 1; the module did stop cleanly first, which is what counts.
      this.finish({ code: 0, signal: null, reason: 'stopped' });
    } else if (this.crash !== undefined) {
      this.finish({ code, signal: null, reason: `crashed: ${this.crash.message}` });
    } else {
      const base = describeExit({ code, signal: null });
      this.finish({ code, signal: null, reason: this.stopNote === undefined ? base : `${this.stopNote}; ${base}` });
    }
  }

  /** One comlink round trip, as `what`; a module error becomes EngineProcessError. */
  private async call<T>(what: string, fn: (remote: Remote<JsWorkerApi>) => Promise<T>, timeoutMs: number): Promise<T> {
    this.calls++;
    try {
      return await this.race(what, fn(this.remote!), timeoutMs);
    } catch (err) {
      if (err instanceof EngineExitedError || err instanceof EngineTimeoutError) throw err;
      throw new EngineProcessError(`${what}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private race<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onExit = (exit: EngineExit): void => {
        clearTimeout(timer);
        reject(new EngineExitedError(`${what}: the worker ${exit.reason ?? describeExit(exit)}`, exit));
      };
      const timer = setTimeout(() => {
        this.inflight.delete(onExit);
        reject(new EngineTimeoutError(`${what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.inflight.add(onExit);
      promise.then(
        (value) => {
          clearTimeout(timer);
          this.inflight.delete(onExit);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.inflight.delete(onExit);
          reject(err);
        },
      );
    });
  }

  private assertRunning(call: string): void {
    if (this.exit !== undefined) throw new EngineExitedError(`${call}: the worker ${this.exit.reason ?? describeExit(this.exit)}`, this.exit);
    if (this.state !== 'running') throw new EngineStateError(`${call}: engine is ${this.state}, not running`, this.state);
  }

  private finish(exit: EngineExit): void {
    if (this.exit !== undefined) return;
    this.exit = exit;
    this.state = 'exited';
    this.log.append(`worker ${exit.reason ?? describeExit(exit)}`, 'engine');
    for (const fail of this.inflight) fail(exit);
    this.inflight.clear();
    this.resolveExited(exit);
  }
}

/**
 * The worker's entry: the compiled js-engine-worker.js beside this file when running from dist/.
 * Running from source (vitest, tsx), this file is .ts and a worker thread cannot load TypeScript by
 * itself, so a small bootstrap registers tsx's loader in the thread first (tsx is a dev dependency,
 * present wherever the source is run).
 */
function workerEntry(): { filename: string | URL; options: WorkerOptions } {
  if (!import.meta.url.endsWith('.ts')) {
    return { filename: new URL('./js-engine-worker.js', import.meta.url), options: {} };
  }
  const source = new URL('./js-engine-worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); });`;
  return { filename: bootstrap, options: { eval: true } };
}

