/**
 * The built-in `window-average` transform: a sliding-window average over a data stream, one output
 * per input, as the original OOI CEI ran it. examples/window_average.py is the same algorithm as an
 * external-engine program; both must produce the same JSON for the same input, and read each
 * other's snapshots.
 *
 * Config: `{ "window": <seconds, finite, > 0, default 10>, "time_field": <string, default "time"> }`.
 *
 * Input (`data` of each message): a JSON object with a finite numeric time field (seconds) and any
 * number of variables. A variable is any other field whose value is a finite number (booleans are
 * not numbers); everything else is ignored. The field `count` is reserved for the output and is
 * never averaged. A message without a numeric time is an error.
 *
 * Output, one per input message and in input order:
 *   `{ "<time_field>": t, "count": n, "<var>": mean, ... }`
 * where the window is the samples with time in (t - window, t], `n` is the number of samples
 * (input messages) in it, including the message itself, and each `<var>` present in at least one
 * of them is the mean over the samples in the window that carry it, so a variable's mean may be
 * over fewer than `n` samples when messages carry different variables. `t` is the message's own
 * time field, echoed as given (the envelope's `time` is not read). Key order is not part of the
 * contract, but both engines write the time, `count`, then the variables in ascending name order.
 *
 * Late messages (time older than the newest seen) are never dropped and never evict newer samples:
 * the sample is inserted at its place in time order, its output averages the held samples with
 * time in (t - window, t], and afterwards everything at or before newest - window is evicted as
 * usual. Samples at or before newest - window were already evicted, so a late message's window is
 * in effect (newest - window, t]: it can miss old samples a batch run over sorted input would have
 * counted. A message at or before newest - window is averaged with itself only and then evicted.
 * Equal times are not late: ties keep arrival order. The alternative, dropping late messages,
 * would break the one-output-per-input contract.
 *
 * Snapshot (plain JSON, identical in both engines):
 *   `{ "version": 1, "window": w, "time_field": f, "samples": [{ "time": t, "values": { "<var>": x } }] }`
 * with the held samples in window order (time ascending, ties in arrival order). A snapshot can
 * only be restored under the same window and time_field; with a larger window the samples it
 * evicted would be missing, silently.
 *
 * Numerics: each mean is a fresh left-to-right sum over the held samples in window order divided
 * by their number, in both engines (Python's sum() is avoided: from 3.12 it compensates). A running
 * sum with subtraction would drift with the stream's history, so two engines, or a run restored
 * from a snapshot and an uninterrupted one, would disagree; this way their outputs are identical.
 */
import { InvalidArgumentError } from '../errors.js';

export interface WindowAverageConfig {
  /** Window length in seconds; finite and > 0. Default 10. */
  readonly window: number;
  /** Name of the time field in input data and output. Default `"time"`; may not be `"count"`. */
  readonly time_field: string;
}

export const DEFAULT_WINDOW_AVERAGE_CONFIG: WindowAverageConfig = { window: 10, time_field: 'time' };

/** The output field holding the number of samples in the window; never averaged. */
export const COUNT_FIELD = 'count';

export const SNAPSHOT_VERSION = 1;

export interface WindowSample {
  readonly time: number;
  readonly values: Readonly<Record<string, number>>;
}

export interface WindowAverageSnapshot {
  readonly version: typeof SNAPSHOT_VERSION;
  readonly window: number;
  readonly time_field: string;
  readonly samples: WindowSample[];
}

export type WindowAverageOutput = Record<string, number>;

/** One input message as the js engine hands it over; only `data` is read. */
export interface TransformMessage {
  readonly stream: string;
  readonly offset: number;
  readonly time: number;
  readonly data: unknown;
}

export interface TransformResult {
  readonly data: WindowAverageOutput;
  readonly time: number;
}

export interface WindowAverageTransform {
  process(messages: readonly TransformMessage[]): TransformResult[];
  snapshot(): WindowAverageSnapshot;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Defines rather than assigns, so a field named "__proto__" in the data is a field like any other.
function setField(obj: Record<string, number>, name: string, value: number): void {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Fills in defaults and rejects anything else; throws InvalidArgumentError naming the bad key. */
export function validateWindowConfig(config: unknown): WindowAverageConfig {
  if (config === undefined || config === null) return DEFAULT_WINDOW_AVERAGE_CONFIG;
  if (!isPlainObject(config)) throw new InvalidArgumentError('window-average: config must be a JSON object');
  for (const key of Object.keys(config)) {
    if (key !== 'window' && key !== 'time_field') {
      throw new InvalidArgumentError(`window-average: unknown config key "${key}" (expected "window", "time_field")`);
    }
  }
  const window = config['window'] ?? DEFAULT_WINDOW_AVERAGE_CONFIG.window;
  if (!isFiniteNumber(window) || window <= 0) {
    throw new InvalidArgumentError(`window-average: "window" must be a finite number of seconds > 0, got ${JSON.stringify(window)}`);
  }
  const timeField = config['time_field'] ?? DEFAULT_WINDOW_AVERAGE_CONFIG.time_field;
  if (typeof timeField !== 'string' || timeField === '') {
    throw new InvalidArgumentError(`window-average: "time_field" must be a non-empty string, got ${JSON.stringify(timeField)}`);
  }
  if (timeField === COUNT_FIELD) {
    throw new InvalidArgumentError(`window-average: "time_field" may not be "${COUNT_FIELD}", which the output uses`);
  }
  return { window, time_field: timeField };
}

/**
 * The sliding window. Not safe for re-entrant use; `process` is all-or-nothing: a bad message
 * anywhere in the batch throws before any sample is taken in, so a retried batch is not counted twice.
 */
export class WindowAverage {
  readonly config: WindowAverageConfig;
  /** Time ascending, ties in arrival order. */
  private samples: WindowSample[] = [];

  constructor(config: WindowAverageConfig, checkpoint?: unknown) {
    this.config = config;
    if (checkpoint !== undefined && checkpoint !== null) this.samples = this.restore(checkpoint);
  }

  /** Parses one input object into a sample; throws InvalidArgumentError if its time is missing or not a number. */
  parse(data: unknown): WindowSample {
    const field = this.config.time_field;
    if (!isPlainObject(data)) throw new InvalidArgumentError(`window-average: message data must be a JSON object, got ${JSON.stringify(data)}`);
    const time = data[field];
    if (!isFiniteNumber(time)) {
      throw new InvalidArgumentError(`window-average: message has no numeric time field "${field}" (got ${JSON.stringify(time) ?? 'nothing'})`);
    }
    const values: Record<string, number> = {};
    for (const [name, value] of Object.entries(data)) {
      if (name !== field && name !== COUNT_FIELD && isFiniteNumber(value)) setField(values, name, value);
    }
    return { time, values };
  }

  /** One output per input, in order; see the module comment for the exact shape. */
  processData(batch: readonly unknown[]): WindowAverageOutput[] {
    const parsed = batch.map((data) => this.parse(data));
    return parsed.map((sample) => this.add(sample));
  }

  snapshot(): WindowAverageSnapshot {
    return {
      version: SNAPSHOT_VERSION,
      window: this.config.window,
      time_field: this.config.time_field,
      samples: this.samples.map((s) => ({ time: s.time, values: { ...s.values } })), // spread defines, like setField
    };
  }

  private add(sample: WindowSample): WindowAverageOutput {
    // Insert after every sample with time <= sample.time: the common in-order case appends.
    let at = this.samples.length;
    while (at > 0 && this.samples[at - 1]!.time > sample.time) at--;
    this.samples.splice(at, 0, sample);

    const t = sample.time;
    const from = t - this.config.window;
    const sums = new Map<string, { sum: number; n: number }>();
    let count = 0;
    for (const s of this.samples) {
      if (s.time <= from || s.time > t) continue;
      count++;
      for (const [name, value] of Object.entries(s.values)) {
        const acc = sums.get(name);
        if (acc === undefined) sums.set(name, { sum: value, n: 1 });
        else {
          acc.sum += value;
          acc.n++;
        }
      }
    }
    const out: WindowAverageOutput = { [this.config.time_field]: t, [COUNT_FIELD]: count };
    for (const name of [...sums.keys()].sort()) {
      const acc = sums.get(name)!;
      setField(out, name, acc.sum / acc.n);
    }

    const newest = this.samples[this.samples.length - 1]!.time;
    const horizon = newest - this.config.window;
    let keepFrom = 0;
    while (keepFrom < this.samples.length && this.samples[keepFrom]!.time <= horizon) keepFrom++;
    if (keepFrom > 0) this.samples.splice(0, keepFrom);
    return out;
  }

  private restore(checkpoint: unknown): WindowSample[] {
    const bad = (why: string): never => {
      throw new InvalidArgumentError(`window-average: checkpoint is not a window-average snapshot: ${why}`);
    };
    if (!isPlainObject(checkpoint)) return bad('not a JSON object');
    if (checkpoint['version'] !== SNAPSHOT_VERSION) return bad(`unsupported version ${JSON.stringify(checkpoint['version'])}`);
    if (checkpoint['window'] !== this.config.window || checkpoint['time_field'] !== this.config.time_field) {
      throw new InvalidArgumentError(
        `window-average: checkpoint was taken with window ${JSON.stringify(checkpoint['window'])} and time_field ` +
          `${JSON.stringify(checkpoint['time_field'])}, but config has window ${this.config.window} and time_field ` +
          `${JSON.stringify(this.config.time_field)}`,
      );
    }
    const raw = checkpoint['samples'];
    if (!Array.isArray(raw)) return bad('"samples" is not an array');
    const samples: WindowSample[] = [];
    for (const s of raw) {
      if (!isPlainObject(s) || !isFiniteNumber(s['time']) || !isPlainObject(s['values'])) return bad('a sample lacks a numeric "time" or a "values" object');
      const values: Record<string, number> = {};
      for (const [name, value] of Object.entries(s['values'])) {
        if (!isFiniteNumber(value)) return bad(`sample value "${name}" is not a finite number`);
        setField(values, name, value);
      }
      if (samples.length > 0 && samples[samples.length - 1]!.time > s['time']) return bad('samples are not in time order');
      samples.push({ time: s['time'], values });
    }
    return samples;
  }
}

/** The js-engine module form: the engine calls this with the transform's config and its last snapshot, if any. */
export default function create(config: unknown, checkpoint?: unknown): WindowAverageTransform {
  const window = new WindowAverage(validateWindowConfig(config), checkpoint);
  return {
    process(messages) {
      const outputs = window.processData(messages.map((m) => m.data));
      // The output message keeps its input's stream time (ms); the data's own time field is seconds.
      return outputs.map((data, i) => ({ data, time: messages[i]!.time }));
    },
    snapshot: () => window.snapshot(),
  };
}
