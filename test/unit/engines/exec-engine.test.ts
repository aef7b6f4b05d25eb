import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEngine,
  EngineExitedError,
  EngineProcessError,
  EngineStartError,
  EngineStateError,
  isNormalExit,
  TEST_ENGINE_OPTIONS,
  type Engine,
  type EngineInput,
  type ExecSpec,
} from '../../../src/engines/engine.js';
import { waitFor, within } from '../../support/wait.js';

const FIXTURES = resolve(import.meta.dirname, '../../support/engines');
const SUM: ExecSpec = { argv: ['python3', resolve(FIXTURES, 'sum.py')] };

const started: Engine[] = [];
afterEach(async () => {
  // SIGKILL at once: whatever a test left running must not outlive it.
  await Promise.all(started.splice(0).map((e) => within(e.stop(0), 'engine stop in afterEach')));
});

function engine(spec: ExecSpec): Engine {
  const e = createEngine('exec', spec, TEST_ENGINE_OPTIONS);
  started.push(e);
  return e;
}

let offset = 0;
function batch(...data: unknown[]): EngineInput[] {
  return data.map((d) => ({ stream: 'in', offset: offset++, time: 1_700_000_000_000 + offset, data: d }));
}

describe('exec engine, jsonl protocol', () => {
  it('keeps running state across batches in one process and resumes from a snapshot', async () => {
    const first = engine(SUM);
    await first.start({}, undefined);
    const [a, b] = [batch(1, 2), batch(10)];
    expect(await first.process(a)).toEqual([
      { data: 1, time: a[0]!.time },
      { data: 3, time: a[1]!.time },
    ]);
    expect(await first.process(b)).toEqual([{ data: 13, time: b[0]!.time }]);
    const state = await first.snapshot();
    expect(state).toEqual({ total: 13, count: 3 });
    // One process served it all: its log has one "started".
    expect(first.log.lines().filter((e) => e.source === 'engine' && e.line.startsWith('started')).length).toBe(1);

    const exit = await first.stop();
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(isNormalExit(exit)).toBe(true);

    const second = engine(SUM);
    await second.start({}, JSON.parse(JSON.stringify(state)));
    expect((await second.process(batch(5))).map((o) => o.data)).toEqual([18]);
  });

  it('answers batches sent without waiting in order', async () => {
    const e = engine(SUM);
    await e.start({}, undefined);
    const replies = await Promise.all([e.process(batch(1)), e.process(batch(2)), e.snapshot(), e.process(batch(3))]);
    expect(replies).toEqual([[expect.objectContaining({ data: 1 })], [expect.objectContaining({ data: 3 })], { total: 3, count: 2 }, [expect.objectContaining({ data: 6 })]]);
  });

  it('rejects a batch the program fails and stays usable', async () => {
    const e = engine(SUM);
    await e.start({}, undefined);
    await e.process(batch(4));
    await expect(e.process(batch(1, 'boom'))).rejects.toThrow(EngineProcessError);
    await expect(e.process(batch('boom'))).rejects.toThrow(/cannot add boom at offset/);
    expect((await e.process(batch(1))).map((o) => o.data)).toEqual([5]);
  });

  it('puts non-protocol stdout and stderr in the log, and carries large lines both ways', async () => {
    const e = engine(SUM);
    await e.start({}, undefined);
    expect(await e.process(batch({ say: 'hello {not json' }))).toEqual([]);
    const big = 'x'.repeat(300_000);
    expect(await e.process(batch({ echo: big }))).toEqual([{ data: big }]);
    await waitFor(() => e.log.lines().some((l) => l.source === 'stderr' && l.line === 'err: hello {not json'), {
      what: 'the stderr line in the log',
    });
    const lines = e.log.lines();
    expect(lines).toContainEqual(expect.objectContaining({ source: 'stdout', line: 'sum: starting at 0' }));
    expect(lines).toContainEqual(expect.objectContaining({ source: 'stdout', line: 'hello {not json' }));
    // Protocol replies never land in the log.
    expect(lines.some((l) => l.line.includes('"op"'))).toBe(false);
  });

  it('reports a non-zero exit through exited and fails what was outstanding', async () => {
    const e = engine(SUM);
    await e.start({}, undefined);
    const pending = e.process(batch({ exit: 4 }));
    await expect(pending).rejects.toThrow(EngineExitedError);
    const exit = await e.exited;
    expect(exit).toMatchObject({ code: 4, signal: null });
    expect(isNormalExit(exit)).toBe(false);
    await expect(e.process(batch(1))).rejects.toThrow(/exited with code 4/);
  });
});

describe('exec engine, plain programs, start failures and exits', () => {
  it('runs a long-running program and stops it with SIGTERM', async () => {
    const e = engine({ argv: ['sleep', '30'], protocol: 'none' });
    await e.start(undefined, undefined);
    await expect(e.process(batch(1))).rejects.toThrow(EngineStateError);
    await expect(e.snapshot()).rejects.toThrow(/not a protocol process/);
    const exit = await e.stop(5_000);
    expect(exit).toMatchObject({ code: null, signal: 'SIGTERM' });
    expect(exit.reason).toMatch(/^stopped/);
    expect(await e.exited).toBe(exit);
  });

  it('kills a program that ignores SIGTERM once the grace passed', async () => {
    const e = engine({ argv: [resolve(FIXTURES, 'ignore-term.sh')], protocol: 'none' });
    await e.start(undefined, undefined);
    await waitFor(() => e.log.lines().some((l) => l.line === 'ready'), { what: 'the trap to be set' });
    const t0 = Date.now();
    const exit = await e.stop(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(exit).toMatchObject({ code: null, signal: 'SIGKILL' });
    expect(exit.reason).toMatch(/killed after 300 ms grace/);
  });

  it('ends the program when the process that started it dies without stopping it (SIGKILL)', async () => {
    // The host is a separate node process holding an engine that runs `sleep 600`, as a worker node does.
    const host = spawn(process.execPath, ['--import', 'tsx', resolve(FIXTURES, 'exec-host.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => host.once('exit', r));
    let out = '';
    host.stdout!.on('data', (d) => (out += d));
    try {
      const pid = Number(await waitFor(() => /^pid (\d+)$/m.exec(out)?.[1], { timeoutMs: 15_000, what: 'the host to start its program' }));
      const alive = (): boolean => {
        try {
          return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
        } catch {
          return false;
        }
      };
      expect(alive()).toBe(true);
      host.kill('SIGKILL');
      await exited;
      // Its lifeline signals the program's group: SIGTERM, then SIGKILL after the grace.
      try {
        await waitFor(() => !alive(), { timeoutMs: 5_000, what: `sleep (pid ${pid}) gone after its host was SIGKILLed` });
      } finally {
        if (alive()) process.kill(pid, 'SIGKILL');
      }
    } finally {
      host.kill('SIGKILL');
    }
  });

  it('rejects start for a program that does not exist', async () => {
    const e = engine({ argv: ['/nonexistent/cei-no-such-program'], protocol: 'none' });
    const err = await e.start(undefined, undefined).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as Error).message).toMatch(/cannot start \/nonexistent\/cei-no-such-program: .*ENOENT/);
    expect((await e.exited).reason).toMatch(/could not spawn/);
  });

  it('rejects start for a program that exits at once, quoting its stderr', async () => {
    for (const protocol of ['none', 'jsonl'] as const) {
      const e = engine({ argv: [resolve(FIXTURES, 'exit-at-once.sh')], protocol });
      const err = await e.start({}, undefined).catch((x: unknown) => x);
      expect(err).toBeInstanceOf(EngineStartError);
      expect((err as Error).message).toMatch(/exited with code 3/);
      expect((err as Error).message).toContain("fatal: no such queue 'inbox'");
      expect((err as EngineStartError).exit).toMatchObject({ code: 3, signal: null });
    }
  });

  it('rejects start when the program never answers the handshake, and kills it', async () => {
    const e = createEngine('exec', { argv: ['sh', '-c', 'cat > /dev/null'] }, { ...TEST_ENGINE_OPTIONS, startTimeoutMs: 300 });
    started.push(e);
    await expect(e.start({}, undefined)).rejects.toThrow(/no answer within 300 ms/);
    expect(await e.exited).toMatchObject({ signal: 'SIGKILL' });
  });

  it('reports a program that ends by itself with code 0 as a normal exit', async () => {
    const e = engine(SUM);
    await e.start({}, undefined);
    await expect(e.process(batch({ exit: 0 }))).rejects.toThrow(EngineExitedError);
    const exit = await e.exited;
    expect(exit).toEqual({ code: 0, signal: null, reason: 'exited with code 0' });
    expect(isNormalExit(exit)).toBe(true);
  });
});
