import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEngine,
  EngineExitedError,
  EngineProcessError,
  EngineStartError,
  isNormalExit,
  TEST_ENGINE_OPTIONS,
  type Engine,
  type EngineInput,
  type EngineOptions,
} from '../../../src/engines/engine.js';
import { JsEngine } from '../../../src/engines/js-engine.js';
import { waitFor, within } from '../../support/wait.js';

const FIXTURES = resolve(import.meta.dirname, '../../support/engines');
const COUNTER = resolve(FIXTURES, 'counter.mjs');

const started: Engine[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => within(e.stop(200), 'engine stop in afterEach')));
});

function engine(module: string, options: Partial<EngineOptions> = {}): JsEngine {
  const e = createEngine('js', { module }, { ...TEST_ENGINE_OPTIONS, ...options });
  started.push(e);
  return e as JsEngine;
}

let offset = 0;
function batch(...data: unknown[]): EngineInput[] {
  return data.map((d) => ({ stream: 'in', offset: offset++, time: 1_700_000_000_000 + offset, data: d }));
}

describe('js engine', () => {
  it('keeps module state across batches and resumes from a snapshot', async () => {
    const first = engine(COUNTER);
    await first.start({ step: 2 }, undefined);
    const a = batch(1, 2);
    expect(await first.process(a)).toEqual([
      { data: 2, time: a[0]!.time },
      { data: 6, time: a[1]!.time },
    ]);
    expect((await first.process(batch(10))).map((o) => o.data)).toEqual([26]);
    const state = await first.snapshot();
    expect(state).toEqual({ total: 26 });
    const exit = await first.stop();
    expect(exit).toEqual({ code: 0, signal: null, reason: 'stopped' });
    expect(isNormalExit(exit)).toBe(true);
    await waitFor(() => first.log.lines().some((l) => l.source === 'stderr' && l.line === 'counter: stopping'), {
      what: "the module's console.error in the log",
    });

    // A file URL works as well as a path.
    const second = engine(pathToFileURL(COUNTER).href);
    await second.start({ step: 1 }, state);
    expect((await second.process(batch(4))).map((o) => o.data)).toEqual([30]);
    await waitFor(() => second.log.lines().some((l) => l.source === 'stdout' && l.line === 'counter: starting at 26'), {
      what: "the module's console.log in the log",
    });
  });

  it('makes one comlink call per batch, however many messages it holds', async () => {
    const e = engine(COUNTER);
    await e.start({}, undefined);
    const before = e.callCount;
    const big = batch(...Array.from({ length: 500 }, () => 1));
    await e.process(big);
    await e.process(batch(1, 1, 1));
    expect(e.callCount - before).toBe(2);
    expect(await e.stats()).toEqual({ processCalls: 2, messages: 503 });
  });

  it('brings the snapshot after a batch back with the batch: snapshot() then makes no call of its own', async () => {
    const e = engine(COUNTER);
    await e.start({}, undefined);
    const before = e.callCount;
    await e.process(batch(1, 2));
    expect(await e.snapshot()).toEqual({ total: 3 });
    expect(e.callCount - before).toBe(1);
    // Taken once: asked again without a batch in between, it is a call to the module.
    expect(await e.snapshot()).toEqual({ total: 3 });
    expect(e.callCount - before).toBe(2);
    expect(await e.stats()).toEqual({ processCalls: 1, messages: 2 });
  });

  it('serves a batch whose snapshot fails after it, and fails snapshot()', async () => {
    const e = engine(COUNTER);
    await e.start({ badSnapshot: true }, undefined);
    expect((await e.process(batch(4))).map((o) => o.data)).toEqual([4]);
    await expect(e.snapshot()).rejects.toThrow(EngineProcessError);
    expect((await e.process(batch(1))).map((o) => o.data)).toEqual([5]);
  });

  it('rejects a batch the module throws on and serves the next one', async () => {
    const e = engine(COUNTER);
    await e.start({}, undefined);
    await e.process(batch(5));
    const err = await e.process(batch(1, 'boom')).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EngineProcessError);
    expect((err as Error).message).toMatch(/boom at offset \d+/);
    // The failed batch left no trace in the state.
    expect((await e.process(batch(1))).map((o) => o.data)).toEqual([6]);
  });

  it('rejects start for a module that does not exist', async () => {
    const e = engine(resolve(FIXTURES, 'no-such-module.mjs'));
    const err = await e.start({}, undefined).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as Error).message).toMatch(/cannot start .*no-such-module\.mjs: .*(Cannot find module|ERR_MODULE_NOT_FOUND)/);
    await e.exited;
  });

  it('rejects start for a module that throws on load', async () => {
    const e = engine(resolve(FIXTURES, 'throws-on-load.mjs'));
    await expect(e.start({}, undefined)).rejects.toThrow(/counter plugin needs LEDGER_URL/);
  });

  it('reports a worker that crashes with an uncaught error as a failure', async () => {
    const e = engine(COUNTER);
    await e.start({}, undefined);
    await e.process(batch('crash'));
    const exit = await within(e.exited, 'the crashed worker to exit');
    expect(exit.code).not.toBe(0);
    expect(exit.reason).toMatch(/crashed: counter crashed outside a call/);
    expect(isNormalExit(exit)).toBe(false);
    await expect(e.process(batch(1))).rejects.toThrow(EngineExitedError);
  });

  it('reports process.exit inside the worker and fails the call in flight', async () => {
    const e = engine(COUNTER);
    await e.start({}, undefined);
    await expect(e.process(batch(1, 'exit'))).rejects.toThrow(EngineExitedError);
    expect(await e.exited).toMatchObject({ code: 7, signal: null });
  });

  it('terminates a module whose stop() does not finish within the grace', async () => {
    const e = engine(COUNTER);
    await e.start({ hangOnStop: true }, undefined);
    const exit = await e.stop(200);
    expect(isNormalExit(exit)).toBe(false);
    expect(exit.reason).toMatch(/terminated: the module did not stop within 200 ms/);
  });
});
