/**
 * `cei launch`, `status`, `runs`, `teardown` and `repair`: launch plans (src/plans/) booted and
 * recorded by src/launch/. This file only turns flags into options and prints what comes back.
 */
import type { Command } from 'commander';
import { PlanError, formatProblem } from './plans/plan.js';
import { collect, indent, pairs, print, table } from './cli-output.js';
import { launchOptions, type LaunchOptions } from './launch/launch-options.js';
import { withRunStore, type RunStore } from './launch/run-store.js';
import { describePlan, launch, loadRunPlan, type LaunchRequest } from './launch/launcher.js';
import { plainProgress, ttyProgress, type Progress } from './launch/progress.js';
import { runStatus, type RunStatus } from './launch/status.js';
import { teardown } from './launch/teardown.js';
import { FailedPreconditionError } from './errors.js';

const homeOption = (cmd: Command) => cmd.option('--home <dir>', 'the cei directory holding the run records (default $CEI_HOME, else ~/.cei)');
const options = (opts: { home?: string }): LaunchOptions => launchOptions({ home: opts.home ?? process.env.CEI_HOME });
const out = (s: string) => void process.stdout.write(s);
const progress = (): Progress => (process.stdout.isTTY ? ttyProgress(out) : plainProgress(out));

/** A bad plan: every problem on its own line (file:line:col: field: reason), exit status 1. */
async function reportPlanErrors(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (!(err instanceof PlanError)) throw err;
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    process.exitCode = 1;
  }
}

function printStatus(s: RunStatus): void {
  print(`run ${s.run.name}: ${s.run.state}${s.run.reason ? ` (${s.run.reason})` : ''}  plan ${s.run.plan}`);
  const rows = [['LEVEL', 'SERVICE', 'KIND', 'STATE', 'READY', 'PID', 'ADDRESS']];
  for (const v of s.services) rows.push([v.level, v.name, v.kind, v.state, v.ready ? 'yes' : `no: ${v.reason}`, v.pid === undefined ? '-' : String(v.pid), v.address ?? '-']);
  print(indent(table(rows)));
  if (!s.system) {
    if (s.run.state !== 'torn-down') print('no node answered: domains and processes unknown');
    return;
  }
  for (const d of s.system.domains) {
    print(`domain ${d.id}: ${d.status}, ${d.instances.length} instance(s)`);
    if (d.instances.length > 0) {
      print(indent(table([['INSTANCE', 'STATE', 'HEALTH', 'ADDRESS'], ...d.instances.map((i) => [i.instance_id, i.state, i.health, i.address ?? '-'])])));
    }
  }
  if (s.system.processes.length > 0) {
    print(`processes:`);
    print(indent(table([['UPID', 'DEFINITION', 'STATE', 'NODE'], ...s.system.processes.map((p) => [p.upid, p.definitionId, p.state, p.assigned?.nodeId ?? '-'])])));
  } else print('processes: none');
  for (const e of s.system.errors) print(`could not read ${e}`);
}

async function runLaunch(store: RunStore, req: LaunchRequest, o: LaunchOptions): Promise<void> {
  const r = await launch(store, req, o, progress());
  if (!r.ok) process.exitCode = 1;
}

export function registerLaunchCommands(program: Command): void {
  homeOption(
    program
      .command('launch <plan>')
      .description('boot a launch plan level by level (a run that exists continues where it stopped; its nodes that died are started again at once, and when none survived, the dispatcher holds their processes until the boot is done)')
      .option('--name <run>', 'the run\'s name (default: the plan\'s name)')
      .option('--dry-run', 'validate and show the levels and services; start nothing', false)
      .option('--var <k=v>', 'a plan variable, ${vars.k} (repeatable)', collect, []),
  ).action((plan: string, opts) =>
    reportPlanErrors(async () => {
      const o = options(opts);
      const vars = pairs('--var', opts.var);
      if (opts.dryRun) {
        const { plan: loaded, name } = await loadRunPlan(plan, opts.name, vars, o.home);
        print(`run ${name}: the plan is valid`);
        for (const line of describePlan(loaded)) print(line);
        return;
      }
      await withRunStore(o.home, (store) => runLaunch(store, { plan, name: opts.name, vars }, o));
    }),
  );

  homeOption(
    program
      .command('status [run]')
      .description('every service of a run with its readiness re-checked, plus the EPU domains and processes')
      .option('--json', 'print JSON', false),
  ).action(async (name: string | undefined, opts) => {
    const o = options(opts);
    const status = await withRunStore(o.home, async (store) => {
      if (name === undefined) {
        const runs = await store.listRuns();
        const live = runs.filter((r) => r.state !== 'torn-down');
        if (live.length !== 1) throw new FailedPreconditionError(live.length === 0 ? 'no run is up (see cei runs)' : `several runs: name one of ${live.map((r) => r.name).join(', ')}`);
        name = live[0]!.name;
      }
      return runStatus(store, name, o);
    });
    if (opts.json) print(JSON.stringify(status, null, 2));
    else printStatus(status);
  });

  homeOption(program.command('runs').description('the runs recorded on this machine, with their state').option('--json', 'print JSON', false)).action(async (opts) => {
    const runs = await withRunStore(options(opts).home, (store) => store.listRuns());
    if (opts.json) print(JSON.stringify(runs, null, 2));
    else if (runs.length === 0) print('no runs');
    else print(table([['RUN', 'STATE', 'PLAN', 'UPDATED'], ...runs.map((r) => [r.name, r.state, r.plan, new Date(r.updatedAt).toISOString()])]));
  });

  homeOption(program.command('teardown <run>').description('remove the run\'s domains and processes, then stop its services in reverse level order')).action(async (name: string, opts) => {
    const o = options(opts);
    const r = await withRunStore(o.home, (store) => teardown(store, name, o, (line) => print(line)));
    if (r.leftBehind.length === 0) print(`run ${name} torn down; nothing left behind`);
    else {
      print(`run ${name} torn down; left behind or forced:`);
      for (const l of r.leftBehind) print(`  ${l}`);
      process.exitCode = 1;
    }
  });

  homeOption(program.command('repair <run>').description('restart the run\'s services that fail their readiness check (bounded retries)')).action((name: string, opts) =>
    reportPlanErrors(async () => {
      const o = options(opts);
      await withRunStore(o.home, async (store) => {
        const run = await store.requireRun(name);
        if (run.state === 'torn-down') throw new FailedPreconditionError(`run "${name}" is torn down; launch it again instead`);
        await runLaunch(store, { plan: run.plan, name, vars: {}, mode: 'repair', minRetries: o.repairRetries }, o);
      });
    }),
  );
}

