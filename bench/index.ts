/**
 * `npm run bench [-- [--quick] [suite ...]]`: runs the named suites (all of them when none is named),
 * prints one line per figure on stdout and, last, one `bench-json {...}` line with every figure for
 * machines. Progress notes and failures go to stderr. Exit status: 0 when every figure was measured,
 * 1 when a measurement failed, 2 for a bad command line.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { BenchContext, Suite } from './suite.js';
import { SUITES } from './suites.js';
import { formatFigure, type Figure } from './support/figure.js';
import { TempDirs } from './support/temp-dirs.js';
import { describeMachine } from './support/machine.js';

const JSON_PREFIX = 'bench-json ';
const JSON_VERSION = 1;

/** NaN (a failed figure) is not JSON and becomes null; fractions keep 3 decimals. */
function jsonNumber(_key: string, v: unknown): unknown {
  if (typeof v !== 'number') return v;
  if (!Number.isFinite(v)) return null;
  return Number.isInteger(v) ? v : Math.round(v * 1000) / 1000;
}

function usage(): string {
  const lines = [...SUITES.values()].map((s) => `  ${s.name.padEnd(12)} ${s.description}`);
  return `usage: npm run bench -- [--quick] [suite ...]\n\nsuites (all of them when none is named):\n${lines.join('\n')}\n\n  --quick      short windows: checks that the suites run; not figures to compare\n`;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { suites: Suite[]; quick: boolean } {
  let quick = false;
  const names: string[] = [];
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    } else if (arg.startsWith('-')) fail(`unknown option ${arg}\n${usage()}`);
    else names.push(arg);
  }
  const known = [...SUITES.keys()].join(', ');
  const suites = names.map((name) => SUITES.get(name) ?? fail(`unknown suite "${name}"; known suites: ${known}`));
  return { suites: suites.length > 0 ? [...new Set(suites)] : [...SUITES.values()], quick };
}

async function main(): Promise<number> {
  const { suites, quick } = parseArgs(process.argv.slice(2));
  const tmp = new TempDirs();
  process.on('exit', () => tmp.removeAll());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

  const startedAt = new Date();
  const begin = performance.now();
  const machine = await describeMachine(1_000);
  const busy = `${Math.round(machine.busyBefore * 100)}%`;
  process.stdout.write(
    `# cei bench ${suites.map((s) => s.name).join(' ')}${quick ? ' (quick: not figures to compare)' : ''}: node ${machine.node}, ${machine.cpus} cpus, ${busy} busy before start\n`,
  );
  if (machine.busyBefore > 0.25) process.stderr.write(`bench: other work kept the cores ${busy} busy before start; figures will be low and noisy\n`);

  const figures: Figure[] = [];
  const ctx: BenchContext = {
    quick,
    tmp,
    report(figure) {
      figures.push(figure);
      process.stdout.write(`${formatFigure(figure)}\n`);
    },
    figure: (suite, key) => figures.find((f) => f.suite === suite && f.key === key),
    note: (line) => process.stderr.write(`bench: ${line}\n`),
  };
  for (const suite of suites) {
    try {
      await suite.run(ctx);
    } catch (err) {
      // Suites report their own failed measurements; this is a failure outside any measurement.
      const message = err instanceof Error ? err.message : String(err);
      ctx.note(`suite ${suite.name} failed: ${err instanceof Error ? (err.stack ?? message) : message}`);
      ctx.report({ suite: suite.name, key: 'suite', label: 'suite', value: Number.NaN, unit: '', targets: [], error: message.split('\n')[0]! });
    }
  }
  tmp.removeAll();

  const durationMs = performance.now() - begin;
  const failed = figures.filter((f) => f.error !== undefined).length;
  process.stdout.write(`# ${figures.length} figures (${failed} failed) in ${(durationMs / 1000).toFixed(1)} s\n`);
  const summary = {
    version: JSON_VERSION,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(durationMs),
    quick,
    suites: suites.map((s) => s.name),
    machine: { ...machine, loadAfter: loadavg() },
    figures,
  };
  process.stdout.write(`${JSON_PREFIX}${JSON.stringify(summary, jsonNumber)}\n`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
