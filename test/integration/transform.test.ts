/**
 * End to end: 100 time steps of 3 variables published to a stream, averaged over a sliding window by
 * a transform process that the dispatcher placed on a real worker node, in the js engine (the
 * built-in window-average) and in the exec engine (examples/window_average.py). Halfway through, the
 * worker hosting the transform is SIGKILLed: the dispatcher places it again on the other worker, and
 * the output must still be exactly one average per input, equal to an independent computation.
 * On the same cluster: a timer runs a one-off definition every interval and each run's result
 * lands in a stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { StreamsClient } from '../../src/client-streams.js';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import type { StreamEntry } from '../../src/actors/stream.js';
import { TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';
import { runCli } from '../support/node-process.js';

const STEPS = 100;
const WINDOW_S = 10;
const VARIABLES = ['temperature', 'salinity', 'pressure'] as const;
const PYTHON_TRANSFORM = resolve(import.meta.dirname, '../../examples/window_average.py');

type Reading = Record<string, number>;

/** A synthetic instrument: step k at time k seconds, values from a fixed formula. */
function readings(): Reading[] {
  return Array.from({ length: STEPS }, (_, k) => ({
    time: k,
    temperature: 10 + 5 * Math.sin(k / 7),
    salinity: 35 + ((k * 37) % 11) / 10,
    pressure: 1000 + k * 0.5,
  }));
}

/** The sliding-window average as plainly as it can be said: samples with time in (t - 10, t]. */
function expectedAverages(data: Reading[]): Reading[] {
  return data.map((current) => {
    const t = current.time!;
    const inWindow = data.filter((d) => d.time! > t - WINDOW_S && d.time! <= t);
    const out: Reading = { time: t, count: inWindow.length };
    for (const v of VARIABLES) out[v] = inWindow.reduce((sum, d) => sum + d[v]!, 0) / inWindow.length;
    return out;
  });
}

async function readAll(streams: StreamsClient, stream: string, subscription: string, n: number): Promise<StreamEntry[]> {
  const sub = streams.subscribe(stream, subscription, { from: 'earliest' });
  const got: StreamEntry[] = [];
  try {
    for await (const m of sub.messages) {
      got.push(m);
      if (got.length >= n) break;
    }
  } finally {
    sub.close();
  }
  return got;
}

describe('a window-average transform on real workers', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'worker', args: ['--slots', '4'] }, { role: 'worker', args: ['--slots', '4'] }]);
  let streams: StreamsClient;
  let dispatcher: DispatcherClient;

  beforeAll(async () => {
    await cluster.startAll();
    streams = new StreamsClient(cluster.address(0));
    dispatcher = new DispatcherClient(cluster.address(0));
    // Both agents have reported to the dispatcher before anything is scheduled.
    await waitFor(async () => (await dispatcher.status()).agents.length === 2, { timeoutMs: 20_000, what: 'two agents heartbeating' });
  }, 60_000);

  afterAll(async () => {
    streams?.close();
    dispatcher?.close();
    await cluster.destroy();
  });

  const cases = [
    { engine: 'js', definition: { id: 'wavg-js', type: 'window-average', executable: {} } },
    { engine: 'exec', definition: { id: 'wavg-py', type: 'exec', executable: { argv: ['python3', PYTHON_TRANSFORM], protocol: 'jsonl' } } },
  ] as const;

  for (const { engine, definition } of cases) {
    it(`${engine} engine: averages 100 steps of 3 variables, exactly once, through a SIGKILL of the transform's worker`, { timeout: 90_000 }, async () => {
      const input = `ctd-${engine}`;
      const output = `ctd-${engine}-avg`;
      const upid = `avg-${engine}`;
      const data = readings();
      await dispatcher.createDefinition(definition);
      await dispatcher.schedule({ upid, definitionId: definition.id, configuration: { inputs: [input], output, window: WINDOW_S, batch: 7 } });
      const running = await dispatcher.wait(upid, ['RUNNING'], 30_000);
      const host = cluster.ids.indexOf(running.assigned!.nodeId);
      expect(host).toBeGreaterThan(0);

      // The first half, then the host dies once some (not necessarily all) of it came out.
      for (let k = 0; k < STEPS / 2; k += 10) await streams.publish(input, data.slice(k, k + 10), { times: data.slice(k, k + 10).map((d) => d.time! * 1000) });
      await waitFor(async () => ((await streams.describe(output).catch(() => undefined))?.head ?? 0) >= 20, { timeoutMs: 20_000, what: 'the first outputs' });
      await cluster.kill(host);
      for (let k = STEPS / 2; k < STEPS; k += 10) await streams.publish(input, data.slice(k, k + 10), { times: data.slice(k, k + 10).map((d) => d.time! * 1000) });

      // Placed again, in a later round, on the worker that is left.
      const moved = await waitFor(
        async () => {
          const p = await dispatcher.describe(upid);
          return p.round > running.round && p.state === 'RUNNING' ? p : undefined;
        },
        { timeoutMs: 30_000, what: `${upid} running again in a later round` },
      );
      expect(moved!.assigned!.nodeId).not.toBe(running.assigned!.nodeId);
      await waitFor(async () => (await streams.describe(output)).head >= STEPS, { timeoutMs: 30_000, what: `${STEPS} outputs` });

      const out = await readAll(streams, output, 'check', STEPS);
      const described = await streams.describe(output);
      // Exactly one output per input: no step missing, none doubled.
      expect(described.head).toBe(STEPS);
      const want = expectedAverages(data);
      for (const [i, m] of out.entries()) {
        const got = m.data as Reading;
        expect(got.time, `output ${i}`).toBe(want[i]!.time);
        expect(got.count, `output ${i}`).toBe(want[i]!.count);
        for (const v of VARIABLES) expect(got[v], `output ${i} ${v}`).toBeCloseTo(want[i]![v]!, 9);
      }
      const input_ = await streams.describe(input);
      expect(input_.subscriptions.find((s) => s.name === upid)).toMatchObject({ cursor: STEPS, queueLength: 0 });

      // Its output, from the worker that runs it now, through the service and the CLI.
      const logs = await dispatcher.logs(upid);
      expect(logs).toMatchObject({ upid, nodeId: moved!.assigned!.nodeId, round: moved!.round });
      expect(logs.lines.some((l) => l.source === 'engine' && /started/.test(l.line))).toBe(true);
      const cli = await runCli(['process', '--node', cluster.address(0), 'logs', upid, '--json']);
      expect(cli.code).toBe(0);
      expect(cli.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(logs.lines.map((l) => l.seq));

      // The killed worker comes back for the next case.
      await dispatcher.terminate(upid);
      await cluster.start(host);
      await waitFor(async () => (await dispatcher.status()).agents.some((a) => a.nodeId === cluster.ids[host]), { timeoutMs: 20_000, what: 'the restarted worker taken back by the dispatcher' });
    });
  }

  it('runs a definition every interval through a timer, each run publishing its result to a stream', { timeout: 60_000 }, async () => {
    const at = ['--node', cluster.address(0)];
    await dispatcher.createDefinition({ id: 'job', type: 'exec', executable: { argv: ['sh', '-c', 'echo working; echo \'{"ok": true}\'; sleep 0.3'], protocol: 'none' } });
    const created = await runCli(['process', ...at, 'timer', 'create', 'tick', '--definition', 'job', '--at', '+100ms', '--every', '500ms', '--count', '2', '--set', 'result=job-results']);
    expect(created.code, created.stderr).toBe(0);
    await waitFor(async () => ((await streams.describe('job-results').catch(() => undefined))?.head ?? 0) >= 2, { timeoutMs: 30_000, what: 'two results' });
    const results = await readAll(streams, 'job-results', 'check', 2);
    expect(results.map((m) => m.data)).toEqual([
      { upid: 'tick-0', round: 0, exit_code: 0, result: { ok: true }, stdout: ['working', '{"ok": true}'] },
      { upid: 'tick-1', round: 0, exit_code: 0, result: { ok: true }, stdout: ['working', '{"ok": true}'] },
    ]);
    expect((await dispatcher.describe('tick-1')).state).toBe('EXITED');
    // Its count reached, the timer is gone.
    const listed = await runCli(['process', ...at, 'timer', 'list', '--json']);
    expect(JSON.parse(listed.stdout)).toEqual({ timers: [] });
  });
});
