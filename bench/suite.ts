import type { Figure } from './support/figure.js';
import type { TempDirs } from './support/temp-dirs.js';

/** What a suite gets from the runner. */
export interface BenchContext {
  /** Set by --quick: short windows that check the suite works; its figures are not to be compared. */
  readonly quick: boolean;
  /** Fresh directories, all deleted when the run ends. */
  readonly tmp: TempDirs;
  /** Prints the figure's line at once and keeps it for the JSON summary. */
  report(figure: Figure): void;
  /** A figure reported earlier in this run (e.g. a raw baseline to compare with). */
  figure(suite: string, key: string): Figure | undefined;
  /** A progress note, on stderr so that stdout holds only figures and the summary. */
  note(line: string): void;
}

/**
 * A named group of measurements. `run` reports its figures through the context; a measurement that
 * fails reports a figure with `error` set rather than throwing, so the others still run.
 */
export interface Suite {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<void>;
}

/** What a measurement returns: a figure without its identity (added by `measure`). */
export type Measured = Omit<Figure, 'suite' | 'key' | 'label' | 'targets' | 'error'> & { targets?: Figure['targets'] };

/**
 * Runs one measurement and reports its figure; a measurement that throws is reported as failed (and
 * returned with `error` set) so that the rest of the suite still runs.
 */
export async function measure(ctx: BenchContext, suite: string, key: string, label: string, fn: () => Promise<Measured>): Promise<Figure> {
  let figure: Figure;
  try {
    const m = await fn();
    figure = { suite, key, label, ...m, targets: m.targets ?? [] };
  } catch (err) {
    figure = { suite, key, label, value: Number.NaN, unit: '', targets: [], error: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
    ctx.note(`${suite} ${key} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  ctx.report(figure);
  return figure;
}
