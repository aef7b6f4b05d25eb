/**
 * The worker-thread side of the js engine: loads the user's module in this thread and exposes one
 * comlink API to the parent. Every method is one round trip; `process` takes a whole batch, so a
 * batch costs one round trip however many messages it holds.
 *
 * comlink runs each call as soon as it arrives. A module whose process() is async could then see
 * the next batch (or a snapshot) before the previous batch finished, so every call here runs in
 * arrival order through one promise chain: the module sees one call at a time, as a process would.
 *
 * `process` also takes the module's snapshot right after the batch, in the same round trip: a
 * transform's pump asks for the snapshot after every batch, and a second round trip through both
 * threads' event loops cost about as much as the batch itself on a busy node.
 */
import { createRequire } from 'node:module';
import { isMainThread, parentPort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { expose } from 'comlink';
import type { EngineInput, EngineOutput } from './engine.js';

const require = createRequire(import.meta.url);
// comlink 4.4 ships its node adapter only as UMD (module.exports = fn) beside a d.ts that declares an
// ES default export; under NodeNext the two disagree about `default`, so load it the CommonJS way.
const nodeEndpoint = require('comlink/dist/umd/node-adapter.js') as typeof import('comlink/dist/umd/node-adapter.js').default;

/** What the user's module's default export returns. */
interface ModuleInstance {
  process(messages: EngineInput[]): EngineOutput[] | Promise<EngineOutput[]>;
  snapshot(): unknown;
  stop?(): unknown;
}

/** Counts kept by the worker so a caller (and the tests) can see how many round trips were made. */
export interface WorkerStats {
  processCalls: number;
  messages: number;
}

/** A batch's outputs and the module's snapshot after it (absent when snapshot() failed: the parent asks again, and hears why). */
export interface ProcessReply {
  outputs: EngineOutput[];
  snapshot?: { state: unknown };
}

/** The API the parent drives through comlink. */
export interface JsWorkerApi {
  start(module: string, config: unknown, checkpoint: unknown): Promise<void>;
  process(batch: EngineInput[]): Promise<ProcessReply>;
  snapshot(): Promise<unknown>;
  stop(): Promise<void>;
  stats(): WorkerStats;
}

let instance: ModuleInstance | undefined;
const stats: WorkerStats = { processCalls: 0, messages: 0 };
let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every call that arrived before it, whatever they resolved to. */
function inOrder<T>(fn: () => Promise<T> | T): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

function need(call: string): ModuleInstance {
  if (instance === undefined) throw new Error(`${call}: the module was not started`);
  return instance;
}

async function takeSnapshot(target: ModuleInstance): Promise<unknown> {
  const state: unknown = await target.snapshot();
  // The contract is a JSON state: find out here, not when the agent persists it.
  return state === undefined ? null : (JSON.parse(JSON.stringify(state)) as unknown);
}

function moduleUrl(module: string): string {
  return module.startsWith('file:') ? module : pathToFileURL(module).href;
}

const api: JsWorkerApi = {
  start(module, config, checkpoint) {
    return inOrder(async () => {
      if (instance !== undefined) throw new Error('start: the module is already started');
      const loaded = (await import(moduleUrl(module))) as { default?: unknown };
      if (typeof loaded.default !== 'function') {
        throw new Error(`${module} has no default export function create(config, checkpoint)`);
      }
      const created = (await (loaded.default as (c: unknown, s: unknown) => unknown)(config, checkpoint ?? undefined)) as Partial<ModuleInstance> | null;
      if (created === null || typeof created !== 'object' || typeof created.process !== 'function' || typeof created.snapshot !== 'function') {
        throw new Error(`${module}: create() must return an object with process(messages) and snapshot()`);
      }
      instance = created as ModuleInstance;
    });
  },
  process(batch) {
    return inOrder(async () => {
      const target = need('process');
      stats.processCalls++;
      stats.messages += batch.length;
      const outputs: unknown = await target.process(batch);
      if (!Array.isArray(outputs) || !outputs.every((o) => typeof o === 'object' && o !== null && 'data' in o)) {
        throw new Error('process() must return an array of {data, time?} outputs');
      }
      try {
        return { outputs: outputs as EngineOutput[], snapshot: { state: await takeSnapshot(target) } };
      } catch {
        return { outputs: outputs as EngineOutput[] };
      }
    });
  },
  snapshot() {
    return inOrder(() => takeSnapshot(need('snapshot')));
  },
  stop() {
    return inOrder(async () => {
      await instance?.stop?.();
    });
  },
  stats() {
    return { ...stats };
  },
};

if (isMainThread || parentPort === null) {
  throw new Error('js-engine-worker must run in a worker thread (see js-engine.ts)');
}
expose(api, nodeEndpoint(parentPort));
