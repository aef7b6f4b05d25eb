/**
 * Input streams and the reference computation shared by the window-average tests (JS and Python).
 * Not a test file itself.
 */
import { seededRandom } from '../../support/seeded-random.js';
import type { TransformMessage } from '../../../src/transforms/window-average.js';

export type Reading = Record<string, number>;

/** `steps` readings of temperature, pressure and salinity; irregular steps are seeded in [0.1, 3) s. */
export function readings(steps: number, options: { seed?: number; irregular?: boolean } = {}): Reading[] {
  const random = seededRandom(options.seed ?? 42);
  const out: Reading[] = [];
  let time = 0;
  for (let i = 0; i < steps; i++) {
    time += options.irregular === true ? 0.1 + random() * 2.9 : 1;
    out.push({
      time,
      temperature: 20 + 5 * Math.sin(i * 0.3) + random(),
      pressure: 101.3 + 0.7 * Math.cos(i * 0.17) - random() * 0.2,
      salinity: 35 + (random() - 0.5) * 1e-3,
    });
  }
  return out;
}

export function messages(data: readonly Reading[], from = 0): TransformMessage[] {
  return data.map((d, i) => ({ stream: 'ctd', offset: from + i, time: d['time']!, data: d }));
}

/**
 * The straightforward definition, with nothing shared with the module: for each reading, the
 * readings seen so far with time in (t - window, t], averaged per variable.
 */
export function reference(data: readonly Reading[], window: number): Reading[] {
  return data.map((current, i) => {
    const t = current['time']!;
    const inWindow = data.slice(0, i + 1).filter((d) => d['time']! > t - window && d['time']! <= t);
    const out: Reading = { time: t, count: inWindow.length };
    const names = new Set(inWindow.flatMap((d) => Object.keys(d).filter((k) => k !== 'time')));
    for (const name of names) {
      const carrying = inWindow.filter((d) => name in d);
      out[name] = carrying.reduce((s, d) => s + d[name]!, 0) / carrying.length;
    }
    return out;
  });
}

/** Same keys, every value within `tolerance`. */
export function expectClose(actual: readonly Record<string, unknown>[], expected: readonly Reading[], tolerance = 1e-9): void {
  if (actual.length !== expected.length) throw new Error(`expected ${expected.length} outputs, got ${actual.length}`);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    const keys = Object.keys(a).sort();
    const want = Object.keys(e).sort();
    if (keys.join() !== want.join()) throw new Error(`output ${i}: keys ${keys.join()} != ${want.join()}`);
    for (const k of want) {
      const av = a[k];
      if (typeof av !== 'number' || !(Math.abs(av - e[k]!) <= tolerance)) {
        throw new Error(`output ${i} (time ${e['time']}): ${k} = ${String(av)}, expected ${e[k]}`);
      }
    }
  });
}
