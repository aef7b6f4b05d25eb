/**
 * `npm run bench -- launch`: boot of plans/local.yaml to fully verified (every level, the system
 * objects applied) and its teardown, through the real `cei launch` and `cei teardown` commands on a
 * fresh home each round; and whether a level's services really start in parallel: a plan with one
 * level of 5 nodes against one with a level of 1 node, booted the same way.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, Suite } from '../suite.js';
import { measure } from '../suite.js';
import { formatMs } from '../support/figure.js';
import { summarize } from '../support/percentiles.js';
import { CLI, PACKAGE_ROOT, distIsStale, ensureBuilt } from '../support/cei-node.js';

export interface LaunchBenchOptions {
  /** Boot + teardown rounds of plans/local.yaml. */
  rounds: number;
  /** Rounds of each of the one-node and five-node plans. */
  parallelRounds: number;
}

export const LAUNCH_BENCH_DEFAULTS: LaunchBenchOptions = { rounds: 5, parallelRounds: 3 };
export const LAUNCH_BENCH_QUICK: LaunchBenchOptions = { rounds: 1, parallelRounds: 1 };

const SUITE = 'launch';
const LOCAL_PLAN = join(PACKAGE_ROOT, 'plans/local.yaml');
const COMMAND_TIMEOUT_MS = 120_000;

/** Runs `cei ...args` to its end; the wall time it took, or an error with its output. */
function cei(args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(performance.now() - started);
      else reject(new Error(`cei ${args.join(' ')} exited ${code}:\n${out.slice(-2000)}`));
    });
  });
}

/** A plan of a bootstrap node and then one level of `n` control nodes. */
function levelPlan(dir: string, n: number): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `level-of-${n}.yaml`);
  writeFileSync(
    file,
    [
      `name: level-of-${n}`,
      'levels:',
      '  - name: seed',
      '    services:',
      '      - name: bootstrap',
      '        node: {role: bootstrap}',
      '  - name: wide',
      '    services:',
      '      - name: control',
      `        count: ${n}`,
      '        node: {role: control}',
      '',
    ].join('\n'),
  );
  return file;
}

/** Launches `plan` in a fresh home and tears it down: both times. */
async function bootAndTeardown(ctx: BenchContext, plan: string, name: string): Promise<{ bootMs: number; teardownMs: number }> {
  const home = ctx.tmp.make(`home-${name}`);
  const bootMs = await cei(['launch', plan, '--name', name, '--home', home]);
  const teardownMs = await cei(['teardown', name, '--home', home]);
  return { bootMs, teardownMs };
}

async function runLaunch(ctx: BenchContext, o: LaunchBenchOptions): Promise<void> {
  ensureBuilt((line) => ctx.note(line));
  if (distIsStale()) ctx.note('dist/ is older than src/: the launch figures measure the last build (npm run build to refresh)');

  const boots: number[] = [];
  const teardowns: number[] = [];
  await measure(ctx, SUITE, 'boot_local', `boot plans/local.yaml to verified, objects applied (${o.rounds} rounds)`, async () => {
    for (let i = 0; i < o.rounds; i++) {
      const r = await bootAndTeardown(ctx, LOCAL_PLAN, `local-${i}`);
      boots.push(r.bootMs);
      teardowns.push(r.teardownMs);
    }
    ctx.note(`boots ${boots.map((x) => Math.round(x)).join(' ')} ms; teardowns ${teardowns.map((x) => Math.round(x)).join(' ')} ms`);
    const l = summarize(boots);
    return { value: l.p50, unit: 'ms p50', p50Ms: l.p50, p99Ms: l.p99, count: l.count, detail: { what: 'cei launch wall time: 3 nodes in 2 levels, a site, a DT, a domain of 2 local workers' } };
  });
  await measure(ctx, SUITE, 'teardown_local', `teardown of plans/local.yaml, workers and nodes (${o.rounds} rounds)`, async () => {
    if (teardowns.length === 0) throw new Error('no boot round completed');
    const l = summarize(teardowns);
    return { value: l.p50, unit: 'ms p50', p50Ms: l.p50, p99Ms: l.p99, count: l.count, detail: { what: 'cei teardown wall time: domain removed (its 2 workers terminated), then 3 nodes stopped' } };
  });

  const dir = ctx.tmp.make('plans');
  const one: number[] = [];
  const five: number[] = [];
  await measure(ctx, SUITE, 'level_of_5', `a level of 5 nodes against a level of 1 (${o.parallelRounds} rounds each)`, async () => {
    for (let i = 0; i < o.parallelRounds; i++) {
      one.push((await bootAndTeardown(ctx, levelPlan(dir, 1), `one-${i}`)).bootMs);
      five.push((await bootAndTeardown(ctx, levelPlan(dir, 5), `five-${i}`)).bootMs);
    }
    const a = summarize(one);
    const b = summarize(five);
    ctx.note(`boot with a level of 1: ${formatMs(a.p50)} p50; with a level of 5: ${formatMs(b.p50)} p50`);
    return {
      value: Number((b.p50 / a.p50).toFixed(2)),
      unit: 'x the level of 1',
      count: b.count,
      detail: { levelOf1P50Ms: Math.round(a.p50), levelOf5P50Ms: Math.round(b.p50), what: 'cei launch wall time, bootstrap level + one level of N control nodes; 5x would mean no parallelism' },
    };
  });
}

export const launchSuite: Suite = {
  name: SUITE,
  description: 'boot and teardown of plans/local.yaml with cei launch/teardown; a level of 5 nodes against a level of 1',
  run: (ctx) => runLaunch(ctx, ctx.quick ? LAUNCH_BENCH_QUICK : LAUNCH_BENCH_DEFAULTS),
};
