/**
 * `cei launch`: boots a plan level by level and records every step in the run store.
 *
 * The services of a level start in parallel; the next level starts once every service of this one
 * is verified (or failed with `continue_on_error`). A node is started detached as
 * `node dist/cli.js node ...` with its output in `<run dir>/logs/<service>.log`; its real address
 * comes from its `ready <id> <address>` line, and it is verified by the gRPC health check (or its
 * `ready` command). A command runs through `sh -c` and is verified by its `ready` command. Each
 * readiness wait is bounded by the service's `timeout`; a service that is not ready is stopped and
 * started again up to `retries` times, then fails its level and the boot.
 *
 * Launching a run that exists continues it: a service recorded verified whose process is still the
 * one recorded and still passes its check is kept (same pid, same address); every other service is
 * stopped if anything of it runs, and started again. A node comes back at the address it had when
 * its port is free (others know it by that address). Then the plan's system objects are applied
 * idempotently through a node's public API. `repair` is the same walk over an up run, with at
 * least `repairRetries` restarts per service.
 *
 * Nodes that had joined and whose processes are gone are all started at once before the walk (see
 * `restartGoneNodes`). When none of the run's nodes survived, the whole system restarted: the
 * dispatcher's system boot is started once the first node is up (its processes from before are
 * held for a new round) and ended after the system objects are applied, so they are placed only on
 * the system as it now is. The run record remembers a boot not yet ended, so a launch that fails in
 * between leaves it to the next one to end.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import YAML from 'yaml';
import { FailedPreconditionError, errorMessage } from '../errors.js';
import { loadPlan } from '../plans/load.js';
import { resolveService, resolveSystem, type BootAttributes } from '../plans/resolve.js';
import type { Plan, PlanService } from '../plans/plan.js';
import type { LaunchOptions } from './launch-options.js';
import { runDir } from './launch-options.js';
import type { RunRecord, RunStore, ServiceRecord } from './run-store.js';
import type { LevelProgress, Progress } from './progress.js';
import { checkRecord, commandCheck, healthCheck, processMarker, serviceRuns, type CheckResult } from './readiness.js';
import { ReadyScanner } from '../iaas/local-process.js';
import { startCommandProcess, startNodeProcess, stopProcess, type Started } from './service-process.js';
import { applySystem, setSystemBoot, SystemClients } from './system.js';

export interface LaunchRequest {
  /** The plan file. */
  plan: string;
  /** The run's name; default the plan's. */
  name?: string;
  /** `--var k=v`; over the vars the run was launched with before. */
  vars: Record<string, string>;
  /** Restarts per service at least this many (repair). */
  minRetries?: number;
  /** Why: 'launch' (default) or 'repair' (the run must exist). */
  mode?: 'launch' | 'repair';
}

export interface LaunchResult {
  run: RunRecord;
  plan: Plan;
  services: ServiceRecord[];
  ok: boolean;
  reason?: string;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The run name a launch without `--name` takes: the plan's `name` as written (read before the plan
 * is loaded, since loading may need the vars an earlier launch of that run recorded).
 */
export async function defaultRunName(file: string): Promise<string | undefined> {
  try {
    const name = (YAML.parse(await readFile(file, 'utf8')) as { name?: unknown } | null)?.name;
    return typeof name === 'string' && name !== '' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** Loads the plan of a run (or of a first launch) with the run's directory and name filled in. */
export async function loadRunPlan(file: string, name: string | undefined, vars: Record<string, string>, home: string): Promise<{ plan: Plan; name: string }> {
  const path = resolvePath(file);
  const runName = name ?? (await defaultRunName(path)) ?? (await loadPlan(path, { vars, env: process.env })).name;
  const plan = await loadPlan(path, { vars, env: process.env, run: { dir: runDir(home, runName), name: runName } });
  return { plan, name: runName };
}

/** The lines `--dry-run` prints: each level and its services. */
export function describePlan(plan: Plan): string[] {
  const lines = [`plan ${plan.name} (${plan.file}): ${plan.levels.length} level(s)`];
  for (const level of plan.levels) {
    lines.push(`level ${level.index + 1} ${level.name}:`);
    for (const s of level.services) {
      const what = s.kind === 'node' ? `node ${s.role} listen ${s.listen} data ${s.data_dir}` : s.kind === 'remote' ? `address ${s.address}` : `run ${s.run}`;
      lines.push(`  ${s.name}: ${what}${s.ready ? ` (ready: ${s.ready})` : ''}`);
    }
  }
  const objects = Object.entries(plan.system).flatMap(([section, objs]) => Object.keys(objs as object).map((n) => `${section}.${n}`));
  if (objects.length > 0) lines.push(`then: ${objects.join(', ')}`);
  return lines;
}

export async function launch(store: RunStore, req: LaunchRequest, o: LaunchOptions, progress: Progress): Promise<LaunchResult> {
  const path = resolvePath(req.plan);
  const named = req.name ?? (await defaultRunName(path));
  const before = named === undefined ? undefined : await store.getRun(named);
  const vars = { ...before?.vars, ...req.vars };
  const { plan, name: runName } = await loadRunPlan(path, named, vars, o.home);
  const existing = before?.name === runName ? before : await store.getRun(runName);
  if (req.mode === 'repair' && !existing) throw new FailedPreconditionError(`no run "${runName}" to repair`);
  if (existing && existing.plan !== path) {
    throw new FailedPreconditionError(`run "${runName}" was launched from ${existing.plan}, not ${path}: tear it down first or choose another --name`);
  }
  const now = Date.now();
  const run: RunRecord = existing
    ? { ...existing, vars, state: 'booting', reason: undefined, updatedAt: now }
    : { name: runName, plan: path, planName: plan.name, vars, dir: runDir(o.home, runName), state: 'booting', createdAt: now, updatedAt: now };
  await store.putRun(run);
  progress.line(`${existing ? (req.mode === 'repair' ? 'repairing' : 'continuing') : 'launching'} run ${runName} from ${path} (${run.dir})`);

  const recorded = await store.services(runName);
  const records = new Map(recorded.map((s) => [s.name, s]));
  const known: BootAttributes = { run: { dir: run.dir, name: runName }, services: {} };
  const booted: ServiceRecord[] = [];
  const fail = async (reason: string): Promise<LaunchResult> => {
    // Nodes started before the walk may still be coming up: their records are written before the store closes.
    await Promise.allSettled(restart.early.values());
    run.state = 'failed';
    run.reason = reason;
    await store.putRun(run);
    progress.line(`launch of ${runName} failed: ${reason}`);
    return { run, plan, services: await store.services(runName), ok: false, reason };
  };

  const quiet: BootEvents = { started: () => {}, verified: () => {}, failed: () => {}, line: (text) => progress.line(text) };
  const recordedAttributes: BootAttributes = { ...known, services: Object.fromEntries(recorded.filter((r) => r.state === 'verified').map((r) => [r.name, r.attributes])) };
  const restart =
    existing && existing.state !== 'torn-down'
      ? restartGoneNodes(new ServiceBoot(store, o, run, plan, recordedAttributes, req.minRetries ?? 0, quiet, false), plan, recorded)
      : { early: new Map<string, Promise<ServiceRecord>>(), cold: false };
  if (restart.early.size > 0) {
    progress.line(`${restart.cold ? 'no node of the run is left: ' : ''}starting ${[...restart.early.keys()].join(', ')} again at once, each at its recorded address`);
  }
  let bootStarted: Promise<void> | undefined;

  for (const level of plan.levels) {
    const started = Date.now();
    const p: LevelProgress = { level: level.name, index: level.index, total: level.services.length, started: 0, verified: 0, failed: 0, kept: 0, elapsedMs: 0 };
    const show = () => progress.level({ ...p, elapsedMs: Date.now() - started });
    const ticker = setInterval(show, 500);
    show();
    const boot = new ServiceBoot(store, o, run, plan, known, req.minRetries ?? 0, {
      started: () => {
        p.started += 1;
        show();
      },
      verified: (kept) => {
        p.verified += 1;
        if (kept) p.kept += 1;
        show();
      },
      failed: () => {
        p.failed += 1;
        show();
      },
      line: (text) => progress.line(text),
    }, restart.early.size > 0);
    const results = await Promise.all(
      level.services.map(async (s) => {
        const early = restart.early.get(s.name);
        if (!early) return boot.boot(s, records.get(s.name));
        // Started before the walk reached its level: counted now.
        const r = await early;
        p.started += 1;
        if (r.state === 'verified') p.verified += 1;
        else p.failed += 1;
        show();
        return r;
      }),
    );
    clearInterval(ticker);
    progress.levelDone({ ...p, elapsedMs: Date.now() - started });
    for (const r of results) {
      booted.push(r);
      if (r.state === 'verified') known.services = { ...known.services, [r.name]: r.attributes };
    }
    const fatal = results.find((r, i) => r.state !== 'verified' && !level.services[i]!.continue_on_error);
    if (fatal) {
      await bootStarted?.catch(() => {});
      return fail(`level ${level.index + 1} ${level.name}: service ${fatal.name}: ${fatal.reason ?? fatal.state}`);
    }
    for (const r of results) if (r.state !== 'verified') progress.line(`  ${r.name} failed (continue_on_error): ${r.reason}`);
    const firstNode = entryOf(booted);
    if (restart.cold && !bootStarted && firstNode) {
      // Recorded before it is sent: should this launch stop before the end, the next one ends it.
      run.systemBoot = true;
      await store.putRun(run);
      bootStarted = withClients(firstNode, (c) => setSystemBoot(c, true, bootTiming(o), (line) => progress.line(`  ${line}`)));
      // Awaited before the system objects; a failure until then is reported there.
      bootStarted.catch(() => {});
    }
  }

  const entry = entryOf(booted);
  try {
    await bootStarted;
  } catch (err) {
    return fail(errorMessage(err));
  }
  const hasObjects = Object.values(plan.system).some((objs) => Object.keys(objs as object).length > 0);
  if ((hasObjects || run.systemBoot) && !entry) return fail('no node is up to apply the plan\'s system objects through');
  if (hasObjects) {
    try {
      const system = resolveSystem(plan, known);
      await withClients(entry!, (c) => applySystem(c, system, { applyTimeoutMs: o.applyTimeoutMs, pollMs: o.pollMs, deadlineMs: 10_000 }, (line) => progress.line(`  ${line}`)));
    } catch (err) {
      return fail(errorMessage(err));
    }
  }
  if (run.systemBoot) {
    try {
      await withClients(entry!, (c) => setSystemBoot(c, false, bootTiming(o), (line) => progress.line(`  ${line}`)));
    } catch (err) {
      return fail(errorMessage(err));
    }
    delete run.systemBoot;
  }
  run.state = 'up';
  await store.putRun(run);
  const services = await store.services(runName);
  progress.line(`run ${runName} is up (${services.length} services)`);
  for (const s of services) progress.line(`  ${summaryLine(s)}`);
  return { run, plan, services, ok: true };
}

/** The first verified service that is a node (launched or given by address): where the public API is reached. */
function entryOf(booted: ServiceRecord[]): string | undefined {
  return booted.find((s) => s.state === 'verified' && (s.kind === 'node' || s.kind === 'remote') && s.address)?.address;
}

async function withClients<T>(address: string, fn: (c: SystemClients) => Promise<T>): Promise<T> {
  const clients = new SystemClients(address);
  try {
    return await fn(clients);
  } finally {
    clients.close();
  }
}

const bootTiming = (o: LaunchOptions) => ({ timeoutMs: o.applyTimeoutMs, pollMs: o.pollMs, deadlineMs: o.checkDeadlineMs });

/**
 * Starts the run's nodes that had joined (a ready line is recorded) and whose processes are gone,
 * all at once, before the levels are walked. A node restarted on its data directory rejoins the
 * members it knew and serves only once it reaches a majority of the voters among them: brought
 * back one level at a time, a run whose voters span levels would wait forever on its first level.
 * `cold` says none of the run's nodes survived (and it has no node given by address): the whole
 * system restarted.
 */
function restartGoneNodes(boot: ServiceBoot, plan: Plan, recorded: ServiceRecord[]): { early: Map<string, Promise<ServiceRecord>>; cold: boolean } {
  const members = recorded.filter((r) => r.kind === 'node' && r.nodeId !== undefined && r.state !== 'stopped');
  const gone = members.filter((r) => !serviceRuns(r));
  const planned = new Map(plan.levels.flatMap((l) => l.services.map((s) => [s.name, s] as const)));
  const early = new Map<string, Promise<ServiceRecord>>();
  for (const r of gone) {
    const s = planned.get(r.name);
    if (s?.kind === 'node') early.set(r.name, boot.boot(s, r));
  }
  const cold = early.size > 0 && early.size === members.length && !recorded.some((r) => r.kind === 'remote');
  return { early, cold };
}

export function summaryLine(s: ServiceRecord): string {
  const where = s.address ? ` ${s.address}` : '';
  const pid = s.pid !== undefined ? ` pid ${s.pid}` : '';
  return `${s.level}/${s.name} ${s.kind}${where}${pid} ${s.state}${s.reason && s.state !== 'verified' ? `: ${s.reason}` : ''}`;
}

/** A start's outcome; `exited` when the process ended before it was ready. */
type AttemptResult = CheckResult | { ok: false; reason: string; exited: true };

interface BootEvents {
  started(): void;
  verified(kept: boolean): void;
  failed(): void;
  line(text: string): void;
}

/** Boots the services of one level, each independently (they run in parallel). */
class ServiceBoot {
  constructor(
    private readonly store: RunStore,
    private readonly o: LaunchOptions,
    private readonly run: RunRecord,
    private readonly plan: Plan,
    private readonly known: BootAttributes,
    private readonly minRetries: number,
    private readonly events: BootEvents,
    /**
     * Nodes of the run are coming back: a node still running whose check fails is given its
     * timeout before it is restarted, since it may be waiting for a majority of the voters.
     */
    private readonly recovering: boolean,
  ) {}

  /** Keeps the service if it runs and passes its check, else (re)starts it; never throws. */
  async boot(planned: PlanService, previous: ServiceRecord | undefined): Promise<ServiceRecord> {
    if (previous?.state === 'verified') {
      let check = await checkRecord(previous, this.o);
      if (!check.ok && this.recovering && previous.kind === 'node' && serviceRuns(previous)) {
        this.events.line(`  ${planned.name}: running but ${check.reason}; waiting for it while the run's nodes come back`);
        check = await this.waitRecorded(previous, Date.now() + planned.timeout * 1000);
      }
      if (check.ok) {
        this.events.started();
        this.events.verified(true);
        return previous;
      }
      this.events.line(`  ${planned.name}: recorded verified but ${check.reason}; starting it again`);
    }
    if (previous?.pid !== undefined && previous.kind !== 'remote') await stopProcess(previous.pid, processMarker(previous), this.o.stopGraceMs, this.o.pollMs);

    const record: ServiceRecord = {
      run: this.run.name,
      name: planned.name,
      level: planned.level,
      levelIndex: planned.levelIndex,
      kind: planned.kind,
      state: 'started',
      attributes: { name: planned.name },
      updatedAt: Date.now(),
    };
    let service: PlanService;
    try {
      service = resolveService(this.plan, planned.levelIndex, planned.name, this.known);
    } catch (err) {
      return this.failed(record, errorMessage(err));
    }
    record.ready = service.ready;
    record.log = join(this.run.dir, 'logs', `${service.name}.log`);
    if (service.kind === 'node') {
      record.data_dir = service.data_dir;
      record.attributes = { ...record.attributes, role: service.role, listen: service.listen, data_dir: service.data_dir };
      record.env = service.env;
    } else if (service.kind === 'command') {
      record.command = service.run;
      record.terminate = service.terminate;
      record.cwd = service.cwd;
      record.env = service.env;
    } else {
      record.address = service.address;
      record.attributes.address = service.address;
      delete record.log;
    }
    // Back at its old address while that port is free: the run's other nodes know it by that one.
    const node = service.kind === 'node' ? service : undefined;
    let reuse = node && previous?.address !== undefined && /:0$/.test(node.listen) ? previous.address : undefined;
    const attempts = Math.max(service.retries, this.minRetries) + 1;
    let reason = '';
    let first = true;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const r = await this.attempt(node && reuse !== undefined ? { ...node, listen: reuse } : service, record, first);
      first = false;
      if (r.ok) {
        record.state = 'verified';
        record.verifiedAt = Date.now();
        delete record.reason;
        await this.store.putService(record);
        this.events.verified(false);
        return record;
      }
      reason = r.reason;
      if (record.pid !== undefined) await stopProcess(record.pid, processMarker(record), this.o.stopGraceMs, this.o.pollMs);
      if (reuse !== undefined && 'exited' in r) {
        // Most likely the port is someone else's by now: a free one, as the plan says, on the same try.
        this.events.line(`  ${service.name}: did not come back at ${reuse} (${reason}); starting it on ${node!.listen}`);
        reuse = undefined;
        attempt -= 1;
        continue;
      }
      if (attempt < attempts) this.events.line(`  ${service.name}: not ready (${reason}); restarting (${attempt}/${attempts - 1})`);
    }
    return this.failed(record, attempts > 1 ? `${reason} (after ${attempts} attempts)` : reason);
  }

  private async failed(record: ServiceRecord, reason: string): Promise<ServiceRecord> {
    record.state = 'failed';
    record.reason = reason;
    await this.store.putService(record);
    this.events.failed();
    return record;
  }

  /** Re-checks a recorded service that still runs until it passes or `deadline`. */
  private async waitRecorded(previous: ServiceRecord, deadline: number): Promise<CheckResult> {
    for (;;) {
      const check = await checkRecord(previous, this.o);
      if (check.ok || Date.now() >= deadline || !serviceRuns(previous)) return check;
      await pause(Math.min(this.o.pollMs, Math.max(0, deadline - Date.now())));
    }
  }

  /** Starts the service once and waits for it to be ready within its timeout. */
  private async attempt(service: PlanService, record: ServiceRecord, first: boolean): Promise<AttemptResult> {
    const deadline = Date.now() + service.timeout * 1000;
    let proc: Started | undefined;
    const scanner = record.log ? ReadyScanner.fromEnd(record.log) : undefined;
    try {
      if (service.kind === 'node') proc = startNodeProcess(service, record.log!);
      else if (service.kind === 'command') proc = startCommandProcess(service, record.log!);
    } catch (err) {
      return { ok: false, reason: `cannot start: ${errorMessage(err)}` };
    }
    record.state = 'started';
    record.startedAt = Date.now();
    if (service.kind === 'node') {
      // A new process: its address and id come from its own ready line.
      delete record.address;
      delete record.nodeId;
      delete record.attributes.address;
    }
    if (proc) {
      record.pid = proc.pid;
      record.attributes.pid = String(proc.pid);
    }
    await this.store.putService(record);
    if (first) this.events.started();
    try {
      const ready = await this.waitReady(service, record, proc, scanner, deadline);
      if (ready.ok && service.kind === 'command') record.longRunning = proc?.exit() === undefined;
      return ready;
    } finally {
      proc?.release();
    }
  }

  private async waitReady(service: PlanService, record: ServiceRecord, proc: Started | undefined, scanner: ReadyScanner | undefined, deadline: number): Promise<AttemptResult> {
    let last: CheckResult = { ok: false, reason: 'not checked yet' };
    const timeoutMs = () => Math.max(100, Math.min(this.o.commandTimeoutMs, deadline - Date.now()));
    for (;;) {
      const exited = proc?.exit();
      if (service.kind === 'node') {
        if (record.address === undefined || record.nodeId === undefined) {
          const line = scanner?.scan();
          if (line) {
            record.address = line.address;
            record.nodeId = line.nodeId;
            record.attributes.address = line.address;
            await this.store.putService(record);
          }
        }
        if (exited !== undefined) return { ok: false, reason: `exited (${exited}) before it was ready; see ${record.log}`, exited: true };
        if (record.address !== undefined) {
          last = service.ready ? await commandCheck(service.ready, { env: service.env, timeoutMs: timeoutMs() }) : await healthCheck(record.address, Math.min(this.o.checkDeadlineMs, timeoutMs()));
          if (last.ok) return last;
        } else {
          last = { ok: false, reason: `no ready line in ${record.log}` };
        }
      } else if (service.kind === 'command') {
        if (!service.ready) {
          return exited === undefined || exited === 'exit code 0' ? { ok: true } : { ok: false, reason: `exited (${exited}); see ${record.log}` };
        }
        last = await commandCheck(service.ready, { cwd: service.cwd, env: service.env, timeoutMs: timeoutMs() });
        if (last.ok) return last;
        if (exited !== undefined && exited !== 'exit code 0') return { ok: false, reason: `exited (${exited}) before it was ready; see ${record.log}` };
      } else {
        last = service.ready ? await commandCheck(service.ready, { timeoutMs: timeoutMs() }) : await healthCheck(service.address, Math.min(this.o.checkDeadlineMs, timeoutMs()));
        if (last.ok) return last;
      }
      if (Date.now() >= deadline) return { ok: false, reason: `not ready within ${service.timeout} s: ${last.ok ? '' : last.reason}` };
      await pause(Math.min(this.o.pollMs, Math.max(0, deadline - Date.now())));
    }
  }
}
