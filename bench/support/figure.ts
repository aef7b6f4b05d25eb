/**
 * One measured figure of a bench run, how it is printed (one human-readable line) and how it goes
 * into the `bench-json` summary. Targets are printed beside the figure and never asserted.
 */

/** A goal for a figure: `actual op want`, e.g. msg/s >= 50,000 or p50 <= 10 ms. */
export interface Target {
  /** What is compared: a unit ("msg/s"), a latency ("p50 ms") or a ratio ("x raw batch"). */
  what: string;
  op: '>=' | '<=';
  want: number;
  actual: number;
  met: boolean;
}

export interface Figure {
  suite: string;
  /** Stable identifier for machines (snake_case); the label may change, the key should not. */
  key: string;
  label: string;
  value: number;
  unit: string;
  p50Ms?: number;
  p99Ms?: number;
  /** Operations counted and the window they were counted in. */
  count?: number;
  windowMs?: number;
  /** The figure divided by a baseline figure, e.g. 0.77 of "raw batch". */
  ratio?: { to: string; toKey: string; value: number };
  targets: Target[];
  /** Extra numbers worth keeping (batches, in-flight counts, checks). */
  detail?: Record<string, number | string | boolean>;
  /** Set when the measurement failed; value is then NaN. */
  error?: string;
}

export function target(what: string, op: '>=' | '<=', want: number, actual: number): Target {
  const met = Number.isFinite(actual) && (op === '>=' ? actual >= want : actual <= want);
  return { what, op, want, actual, met };
}

/** 112345.6 -> "112,346"; 10 -> "10"; 12.3456 -> "12.3"; 0.01234 -> "0.0123". */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const abs = Math.abs(n);
  if (abs >= 100) return Math.round(n).toLocaleString('en-US');
  if (abs >= 10) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** ">= 50,000 msg/s ok", ">= 0.5x raw batch ok", "p50 <= 10 ms MISSED". */
function formatTarget(t: Target): string {
  const verdict = t.met ? 'ok' : 'MISSED';
  if (t.what.startsWith('x ')) return `${t.op} ${t.want}${t.what} ${verdict}`;
  const latency = /^(p\d+) ms$/.exec(t.what);
  if (latency) return `${latency[1]} ${t.op} ${formatNumber(t.want)} ms ${verdict}`;
  return `${t.op} ${formatNumber(t.want)} ${t.what} ${verdict}`;
}

const LABEL_WIDTH = 44;
const VALUE_WIDTH = 12;

/**
 * `runtime  durable tells, 1000 actors   112,345 msg/s  p50 4.10 ms  p99 9.80 ms  (0.77x raw batch; target ...)`
 */
export function formatFigure(f: Figure): string {
  const head = `${f.suite.padEnd(8)} ${f.label.padEnd(LABEL_WIDTH)}`;
  if (f.error !== undefined) return `${head} FAILED: ${f.error}`;
  const parts = [`${formatNumber(f.value).padStart(VALUE_WIDTH)} ${f.unit}`];
  if (f.p50Ms !== undefined) parts.push(`p50 ${formatMs(f.p50Ms)}`);
  if (f.p99Ms !== undefined) parts.push(`p99 ${formatMs(f.p99Ms)}`);
  const notes: string[] = [];
  if (f.ratio) notes.push(`${f.ratio.value.toFixed(2)}x ${f.ratio.to}`);
  if (f.targets.length > 0) notes.push(`target ${f.targets.map(formatTarget).join(', ')}`);
  if (notes.length > 0) parts.push(`(${notes.join('; ')})`);
  return `${head} ${parts.join('  ')}`;
}
