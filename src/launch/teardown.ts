/**
 * `cei teardown`: taking a run down.
 *
 * Order: the plan's processes are terminated and its EPU domains removed (the provisioner
 * terminates every instance it launched) and waited for until none is listed; then any worker the
 * local driver launched for the plan's local sites that still runs (its pid is in the instance
 * record under the site's data_dir) is killed and reported; then the services stop level by level
 * in reverse order, those of a level in parallel: a command's `terminate` command, then SIGTERM to
 * its process group with a deadline, then SIGKILL. Whatever still runs after that is reported.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { isInstanceProcess, signalInstance } from '../iaas/local-process.js';
import { resolveSystem } from '../plans/resolve.js';
import type { PlanSystem } from '../plans/plan.js';
import type { LaunchOptions } from './launch-options.js';
import { loadRunPlan } from './launcher.js';
import type { RunStore } from './run-store.js';
import { commandCheck, processMarker, serviceRuns } from './readiness.js';
import { reachableNode } from './status.js';
import { stopProcess } from './service-process.js';
import { removeSystem, SystemClients } from './system.js';

export interface TeardownResult {
  /** What is still running or could not be done. */
  leftBehind: string[];
}

/** The pids of every local-driver instance under `dir` that still runs. */
function liveInstances(dir: string): Array<{ id: string; pid: number }> {
  if (!existsSync(dir)) return [];
  const out: Array<{ id: string; pid: number }> = [];
  for (const id of readdirSync(dir)) {
    try {
      const record = JSON.parse(readFileSync(join(dir, id, 'instance.json'), 'utf8')) as { pid?: unknown };
      if (typeof record.pid === 'number' && isInstanceProcess(record.pid, id)) out.push({ id, pid: record.pid });
    } catch {
      // Not an instance, or not started.
    }
  }
  return out;
}

/** The directories the plan's local sites launch workers under. */
export function localSiteDirs(system: Pick<PlanSystem, 'sites'>): string[] {
  return Object.values(system.sites).flatMap((site) => {
    const dir = (site.settings as { data_dir?: unknown } | undefined)?.data_dir;
    return site.type === 'local' && typeof dir === 'string' ? [dir] : [];
  });
}

export async function teardown(store: RunStore, name: string, o: LaunchOptions, say: (line: string) => void): Promise<TeardownResult> {
  const run = await store.requireRun(name);
  const records = await store.services(name);
  const leftBehind: string[] = [];

  // 1. The system: processes and domains, through any node still up.
  let system: PlanSystem | undefined;
  try {
    const { plan } = await loadRunPlan(run.plan, run.name, run.vars, o.home);
    const known = { run: { dir: run.dir, name: run.name }, services: Object.fromEntries(records.map((s) => [s.name, s.attributes])) };
    system = resolveSystem(plan, known);
  } catch (err) {
    leftBehind.push(`the plan ${run.plan} could not be read (${errorMessage(err)}): its domains and processes were not removed`);
  }
  if (system && (Object.keys(system.domains).length > 0 || Object.keys(system.processes).length > 0)) {
    const via = await reachableNode(records, o);
    if (!via) leftBehind.push('no node answered: the plan\'s domains and processes were not removed');
    else {
      const clients = new SystemClients(via);
      try {
        leftBehind.push(...(await removeSystem(clients, system, { drainTimeoutMs: o.drainTimeoutMs, pollMs: o.pollMs, deadlineMs: 10_000 }, (line) => say(line))));
      } finally {
        clients.close();
      }
    }
  }
  for (const dir of system ? localSiteDirs(system) : []) {
    for (const { id, pid } of liveInstances(dir)) {
      signalInstance(pid, 'SIGKILL');
      leftBehind.push(`worker ${id} (pid ${pid}) was still running after its domain was removed; killed`);
    }
  }

  // 2. The services, level by level in reverse order.
  const levels = [...new Set(records.map((s) => s.levelIndex))].sort((a, b) => b - a);
  for (const index of levels) {
    await Promise.all(
      records
        .filter((s) => s.levelIndex === index)
        .map(async (s) => {
          if (s.kind === 'remote') return;
          if (s.kind === 'command' && s.terminate) {
            const r = await commandCheck(s.terminate, { cwd: s.cwd, env: s.env, timeoutMs: o.commandTimeoutMs });
            if (!r.ok) say(`${s.name}: terminate command failed: ${r.reason.replace(/^ready command/, 'command')}`);
          }
          if (s.pid !== undefined) {
            const how = await stopProcess(s.pid, processMarker(s), o.stopGraceMs, o.pollMs);
            if (how !== 'gone') say(`${s.level}/${s.name}: pid ${s.pid} ${how}`);
            if (how === 'killed') leftBehind.push(`${s.name} (pid ${s.pid}) did not stop within ${o.stopGraceMs} ms of SIGTERM; killed`);
          }
          await store.putService({ ...s, state: 'stopped' });
        }),
    );
  }
  for (const s of records) {
    if (s.pid !== undefined && serviceRuns(s)) leftBehind.push(`${s.name} (pid ${s.pid}) is still running`);
  }
  run.state = 'torn-down';
  delete run.reason;
  await store.putRun(run);
  return { leftBehind };
}
