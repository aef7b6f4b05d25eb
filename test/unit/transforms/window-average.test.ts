import { describe, expect, it } from 'vitest';
import create, { WindowAverage, validateWindowConfig, type TransformResult } from '../../../src/transforms/window-average.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import { expectClose, messages, readings, reference, type Reading } from './window-average-input.js';

function runInBatches(data: readonly Reading[], batchSize: number, checkpoint?: unknown, from = 0): { outputs: TransformResult[]; snapshot: unknown } {
  const transform = create({ window: 10 }, checkpoint);
  const outputs: TransformResult[] = [];
  const all = messages(data, from);
  for (let i = 0; i < all.length; i += batchSize) outputs.push(...transform.process(all.slice(i, i + batchSize)));
  return { outputs, snapshot: transform.snapshot() };
}

describe('window-average', () => {
  it('averages 100 one-second steps of 3 variables over a 10 s window like the plain definition', () => {
    const data = readings(100);
    const { outputs } = runInBatches(data, 8);
    expect(outputs).toHaveLength(100);
    expectClose(
      outputs.map((o) => o.data),
      reference(data, 10),
    );
    outputs.forEach((o, i) => {
      expect(o.time).toBe(data[i]!['time']);
      // (t - 10, t] with a 1 s step holds 10 samples once the stream is 10 s old.
      expect(o.data['count']).toBe(Math.min(i + 1, 10));
    });
    expect(Object.keys(outputs[50]!.data)).toEqual(['time', 'count', 'pressure', 'salinity', 'temperature']);
  });

  it('averages irregular steps like the plain definition', () => {
    const data = readings(100, { irregular: true, seed: 7 });
    const { outputs } = runInBatches(data, 13);
    expectClose(
      outputs.map((o) => o.data),
      reference(data, 10),
    );
    expect(new Set(outputs.map((o) => o.data['count'])).size).toBeGreaterThan(3);
  });

  it('ignores non-numeric fields and averages each variable over the samples that carry it', () => {
    const transform = create({ window: 5 }, undefined);
    const input = [
      { time: 1, a: 1, label: 'x', flag: true, count: 99 },
      { time: 2, a: 3, b: 10, nested: { a: 1 } },
      { time: 3, b: 20, a: null },
    ];
    const outputs = transform.process(input.map((data, i) => ({ stream: 's', offset: i, time: 1000 + i, data })));
    expect(outputs).toEqual([
      { data: { time: 1, count: 1, a: 1 }, time: 1000 },
      { data: { time: 2, count: 2, a: 2, b: 10 }, time: 1001 },
      { data: { time: 3, count: 3, a: 2, b: 15 }, time: 1002 },
    ]);
  });

  it('uses the configured time field in input and output', () => {
    const transform = create({ window: 2, time_field: 'ts' }, undefined);
    const outputs = transform.process([
      { stream: 's', offset: 0, time: 7_000, data: { ts: 1, v: 2, time: 50 } },
      { stream: 's', offset: 1, time: 8_000, data: { ts: 2, v: 4 } },
      { stream: 's', offset: 2, time: 9_000, data: { ts: 3, v: 9 } },
    ]);
    // The data's own "time" is an ordinary variable under time_field "ts".
    expect(outputs.map((o) => o.data)).toEqual([
      { ts: 1, count: 1, time: 50, v: 2 },
      { ts: 2, count: 2, time: 50, v: 3 },
      { ts: 3, count: 2, v: 6.5 },
    ]);
    // An output keeps its input's stream time (ms), whatever the data's time field says.
    expect(outputs.map((o) => o.time)).toEqual([7_000, 8_000, 9_000]);
  });

  it('averages a late message into a window ending at its own time without evicting newer samples', () => {
    const w = new WindowAverage(validateWindowConfig({ window: 10 }));
    const outs = w.processData([
      { time: 10, v: 10 },
      { time: 15, v: 15 },
      { time: 20, v: 20 },
      // Late but inside the held window (10, 20]: averaged over held samples in (2, 12].
      { time: 12, v: 12 },
      // Late and older than the held window: only itself, then evicted.
      { time: 5, v: 5 },
      { time: 21, v: 21 },
    ]);
    expect(outs).toEqual([
      { time: 10, count: 1, v: 10 },
      { time: 15, count: 2, v: 12.5 },
      { time: 20, count: 2, v: 17.5 },
      // The sample at 10 was evicted when 20 arrived ((10, 20] excludes 10).
      { time: 12, count: 1, v: 12 },
      { time: 5, count: 1, v: 5 },
      { time: 21, count: 4, v: (12 + 15 + 20 + 21) / 4 },
    ]);
    expect(w.snapshot().samples.map((s) => s.time)).toEqual([12, 15, 20, 21]);
  });

  it('keeps arrival order among equal times, and counts both', () => {
    const w = new WindowAverage(validateWindowConfig({ window: 1 }));
    expect(w.processData([{ time: 1, v: 1 }, { time: 1, v: 3 }])).toEqual([
      { time: 1, count: 1, v: 1 },
      { time: 1, count: 2, v: 2 },
    ]);
  });

  it('gives, resumed from a JSON copy of a snapshot at any cut, exactly the outputs of an uninterrupted run', () => {
    const data = readings(100, { irregular: true, seed: 3 });
    const whole = runInBatches(data, 7).outputs;
    // Cuts at 0, inside the first window, at and between batch boundaries of 7, and at the end.
    for (const cut of [0, 1, 5, 7, 14, 23, 50, 63, 99, 100]) {
      const first = runInBatches(data.slice(0, cut), 7);
      const checkpoint: unknown = JSON.parse(JSON.stringify(first.snapshot));
      const rest = runInBatches(data.slice(cut), 5, checkpoint, cut);
      expect([...first.outputs, ...rest.outputs], `cut at ${cut}`).toEqual(whole);
    }
  });

  it('snapshots only the samples in the window, as plain JSON', () => {
    const { snapshot } = runInBatches(
      [
        { time: 1, a: 1 },
        { time: 5, a: 2, b: 3 },
        { time: 12, a: 4 },
      ],
      2,
    );
    expect(snapshot).toEqual({
      version: 1,
      window: 10,
      time_field: 'time',
      samples: [
        { time: 5, values: { a: 2, b: 3 } },
        { time: 12, values: { a: 4 } },
      ],
    });
  });

  it('rejects a batch with a bad message whole, so the retried batch counts nothing twice', () => {
    const transform = create({ window: 10 }, undefined);
    transform.process(messages(readings(5)));
    const before = transform.snapshot();
    const next = messages(readings(8).slice(5), 5);
    const bad = [next[0]!, { stream: 'ctd', offset: 6, time: 6, data: { temperature: 1 } }, next[2]!];
    expect(() => transform.process(bad)).toThrow(InvalidArgumentError);
    expect(transform.snapshot()).toEqual(before);
    const outputs = transform.process(next);
    expect(outputs.map((o) => o.data)).toEqual(runInBatches(readings(8), 8).outputs.slice(5).map((o) => o.data));
  });

  it('names the time field when a message has no numeric time', () => {
    const transform = create({ time_field: 'ts' }, undefined);
    const msg = (data: unknown) => [{ stream: 's', offset: 0, time: 1, data }];
    expect(() => transform.process(msg({ time: 1, v: 2 }))).toThrow(/no numeric time field "ts" \(got nothing\)/);
    expect(() => transform.process(msg({ ts: '3', v: 2 }))).toThrow(/no numeric time field "ts" \(got "3"\)/);
    expect(() => transform.process(msg({ ts: null }))).toThrow(/no numeric time field "ts"/);
    expect(() => transform.process(msg([1, 2]))).toThrow(/must be a JSON object/);
    expect(() => transform.process(msg(7))).toThrow(InvalidArgumentError);
  });

  it('validates the config with clear errors and fills in defaults', () => {
    expect(validateWindowConfig(undefined)).toEqual({ window: 10, time_field: 'time' });
    expect(validateWindowConfig({})).toEqual({ window: 10, time_field: 'time' });
    expect(validateWindowConfig({ window: 0.5, time_field: 't' })).toEqual({ window: 0.5, time_field: 't' });
    for (const window of [0, -1, '10', Number.NaN, Number.POSITIVE_INFINITY, true]) {
      expect(() => create({ window }, undefined)).toThrow(/"window" must be a finite number of seconds > 0/);
    }
    expect(() => create({ window: 0 }, undefined)).toThrow(InvalidArgumentError);
    expect(() => create({ windw: 5 }, undefined)).toThrow(/unknown config key "windw"/);
    expect(() => create({ time_field: '' }, undefined)).toThrow(/"time_field" must be a non-empty string/);
    expect(() => create({ time_field: 'count' }, undefined)).toThrow(/may not be "count"/);
    expect(() => create([10], undefined)).toThrow(/config must be a JSON object/);
  });

  it('refuses a checkpoint from another window or that is not a snapshot', () => {
    const { snapshot } = runInBatches(readings(20), 20);
    expect(() => create({ window: 20 }, snapshot)).toThrow(/taken with window 10 .* config has window 20/);
    expect(() => create({ window: 10 }, { version: 2 })).toThrow(/unsupported version 2/);
    expect(() => create({ window: 10 }, { version: 1, window: 10, time_field: 'time', samples: [{ time: 'x' }] })).toThrow(/numeric "time"/);
    expect(() =>
      create({ window: 10 }, { version: 1, window: 10, time_field: 'time', samples: [{ time: 2, values: {} }, { time: 1, values: {} }] }),
    ).toThrow(/not in time order/);
    expect(() => create({ window: 10 }, null)).not.toThrow();
  });
});
