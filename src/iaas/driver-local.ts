/**
 * The `local` driver: each instance is a real `cei node --role=worker --instance-id <id>` process on
 * this machine, in its own directory under the site's `data_dir` (the driver's `baseDir` option when
 * the site names none):
 *
 *   <baseDir>/<instanceId>/instance.json   pid and launch time, written when the process starts
 *   <baseDir>/<instanceId>/node.log        the worker's stdout and stderr (its ready line, its logs)
 *   <baseDir>/<instanceId>/data/           the worker's --data directory
 *   <baseDir>/<instanceId>/outcome.json    why it failed or ended, once the driver decided that
 *
 * Processes are started detached (their own process group, no pipes back to this process), so they
 * outlive the node that launched them. The directory is the instance's record at the IaaS: creating
 * it claims the id (so a launch retried by a later incarnation never starts a second process), and
 * `list` finds every instance under the base directory, adopted or not (so a zombie is visible). A
 * base directory therefore belongs to one cluster.
 *
 * States: pending from launch; started once the worker printed its ready line (read from its log);
 * terminated (EXITED) when a started process is gone; failed (IAAS_BOOT_FAILED) when it is gone
 * before it was ready, or (IAAS_TIMEOUT) when not ready within `startTimeoutMs` - the driver then
 * kills it. A process that ended keeps its directory, log included, until `terminate` removes it.
 * RUNNING is not the driver's to see: the provisioner decides it from cluster membership.
 *
 * Waits (the start timeout, the termination grace) run on the injected clock; the system clock's
 * timers do not hold a process open, so a caller with nothing else alive must keep itself alive.
 */
import { NODE_V8_FLAGS } from '../node-flags.js';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../errors.js';
import { systemClock, type Clock, type TimerHandle } from '../runtime/clock.js';
import { silentLogger, type Logger } from '../runtime/logger.js';
import {
  INSTANCE_ID,
  isFinal,
  notFoundInstance,
  validateInstanceId,
  validateLaunchRequest,
  type DriverInstance,
  type DriverInstanceState,
  type DriverListener,
  type DriverReason,
  type IaasDriver,
  type InstanceHandle,
  type LaunchRequest,
} from './driver.js';
import { IaasFullError, IaasTimeoutError, IaasUnavailableError } from './driver-errors.js';
import { parseSettings } from './driver-settings.js';
import { ReadyScanner, isInstanceProcess, logTail, signalInstance, type ReadyLine } from './local-process.js';

/** A local site's settings as the registry stores them (proto/cei/v1/dtrs.proto). */
export const localSiteSettingsSchema = z.strictObject({
  /** Live instances the site takes; past it launches fail with IAAS_FULL. The driver's option when absent. */
  max_instances: z.number().int('max_instances must be a whole number').min(1, 'max_instances must be >= 1').optional(),
  /** Where instance directories are made. The driver's `baseDir` option when absent. */
  data_dir: z.string().min(1, 'data_dir must not be empty').optional(),
});
export type LocalSiteSettings = z.output<typeof localSiteSettingsSchema>;

/** How the driver runs, as the program that hosts it configures it (not per site). */
export interface LocalDriverOptions {
  /**
   * Instance directories for a site that names no `data_dir`. No default: every driver that shares
   * a directory treats what is in it as its own (see above), so the host chooses it.
   */
  baseDir: string | undefined;
  /** Live instances allowed when the site sets no `max_instances`. */
  capacity: number;
  /** The `cei` entry point the workers run. */
  cliPath: string;
  /** The Node.js binary that runs it. */
  nodePath: string;
  /** Host the workers listen on; each picks a free port. */
  listenHost: string;
  /** The workers' --log-level (their logs go to node.log). */
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** A worker not ready this long after launch is killed and failed with IAAS_TIMEOUT. */
  startTimeoutMs: number;
  /** After SIGTERM, how long a worker may take to leave the cluster before SIGKILL. */
  terminateGraceMs: number;
  /** After SIGKILL, how long until a process still there fails the terminate with IAAS_TIMEOUT. */
  killTimeoutMs: number;
  /** How often pending and started processes are checked (ready line, exit, start timeout). */
  pollIntervalMs: number;
  /** Terminated instances whose directory is gone are remembered this long (so a late launch of the id is refused). */
  retainFinalMs: number;
}

/** The built `cei` next to this module in dist/, or dist/cli.js when this module runs from src/. */
const DEFAULT_CLI = resolve(import.meta.dirname, '../../dist/cli.js');

export const LOCAL_DEFAULTS: LocalDriverOptions = {
  baseDir: undefined,
  // A machine runs a few dozen node processes at most; a site that knows better says max_instances.
  capacity: 64,
  cliPath: DEFAULT_CLI,
  nodePath: process.execPath,
  listenHost: '127.0.0.1',
  logLevel: 'warn',
  startTimeoutMs: 30_000,
  // A worker's graceful stop hands its actors over and drains calls for up to 5 s (NODE_DEFAULTS).
  terminateGraceMs: 10_000,
  killTimeoutMs: 5_000,
  pollIntervalMs: 100,
  retainFinalMs: 10 * 60_000,
};

/** Quicker polling for tests with real processes on loopback. */
export const LOCAL_TEST_PRESET: LocalDriverOptions = {
  ...LOCAL_DEFAULTS,
  startTimeoutMs: 20_000,
  pollIntervalMs: 20,
};

const ms = (what: string) => z.number({ error: `${what} must be a number of milliseconds` }).int(`${what} must be whole milliseconds`).min(0, `${what} must be >= 0`);
const path = (what: string) => z.string({ error: `${what} must be a path` }).min(1, `${what} must not be empty`);

/** Checks LocalDriverOptions; every field defaults to LOCAL_DEFAULTS. */
export const localOptionsSchema = z.strictObject({
  baseDir: path('baseDir').optional(),
  capacity: z.number().int('capacity must be a whole number').min(0, 'capacity must be >= 0').default(LOCAL_DEFAULTS.capacity),
  cliPath: path('cliPath').default(LOCAL_DEFAULTS.cliPath),
  nodePath: path('nodePath').default(LOCAL_DEFAULTS.nodePath),
  listenHost: z.string().min(1, 'listenHost must not be empty').default(LOCAL_DEFAULTS.listenHost),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default(LOCAL_DEFAULTS.logLevel),
  startTimeoutMs: ms('startTimeoutMs').default(LOCAL_DEFAULTS.startTimeoutMs),
  terminateGraceMs: ms('terminateGraceMs').default(LOCAL_DEFAULTS.terminateGraceMs),
  killTimeoutMs: ms('killTimeoutMs').default(LOCAL_DEFAULTS.killTimeoutMs),
  pollIntervalMs: ms('pollIntervalMs').min(1, 'pollIntervalMs must be >= 1').default(LOCAL_DEFAULTS.pollIntervalMs),
  retainFinalMs: ms('retainFinalMs').default(LOCAL_DEFAULTS.retainFinalMs),
});

/** Flags the driver sets itself; launch params that set them would run a worker it cannot track. */
const DRIVER_FLAGS = ['--role', '--instance-id', '--join', '--data', '--listen'];

/** A local launch's parameters as the registry resolves them (proto/cei/v1/dtrs.proto). */
export const localLaunchParamsSchema = z.strictObject({
  /** Extra arguments of the worker's `cei node` command line. */
  args: z
    .array(z.string().refine((a) => !a.includes('\0'), 'args must not contain NUL characters'), { error: 'args must be a list of strings' })
    .refine((args) => !args.some((a) => DRIVER_FLAGS.some((f) => a === f || a.startsWith(`${f}=`))), {
      error: `args may not set ${DRIVER_FLAGS.join(', ')}: the driver sets them`,
    })
    .optional(),
  /** Extra environment of the worker process. */
  env: z
    .record(z.string(), z.string(), { error: 'env must map names to strings' })
    .refine((env) => !Object.entries(env).some(([k, v]) => k.includes('\0') || k.includes('=') || v.includes('\0')), {
      error: 'env names must not contain "=" or NUL characters, nor values NUL',
    })
    .optional(),
  /** Process slots of the worker's execution engine (`--slots`; `args` may still override it). */
  slots: z.number().int('slots must be a whole number').min(1, 'slots must be >= 1').optional(),
});
export type LocalLaunchParams = z.output<typeof localLaunchParamsSchema>;

/** What the driver runs with: its options, with the site's settings applied. */
export type LocalDriverConfig = Omit<LocalDriverOptions, 'baseDir'> & { baseDir: string };

const INSTANCE_FILE = 'instance.json';
const OUTCOME_FILE = 'outcome.json';
const LOG_FILE = 'node.log';
const DATA_DIR = 'data';
/** Upper bound of one wait step while a terminated process is expected to go away. */
const EXIT_CHECK_MS = 25;

interface InstanceRecord {
  instanceId: string;
  pid: number | undefined;
  launchedAt: number;
}

interface LocalInstance {
  readonly id: string;
  readonly dir: string;
  pid: number | undefined;
  launchedAt: number;
  state: DriverInstanceState;
  since: number;
  reason?: DriverReason;
  detail?: string;
  ready?: ReadyLine;
  readonly scanner: ReadyScanner;
  /** How our own child ended or failed to start; unknown for adopted processes. */
  exit?: string;
  /** Our own child whose exit event has not come yet: its end is reported with the exit code. */
  awaitingExit?: boolean;
  /** Set while terminate() works on it; the poller leaves it alone meanwhile. */
  terminating?: Promise<DriverInstance>;
  /** When its directory was removed: from then on it is only a memory that the id ended. */
  removedAt?: number;
}

const ACTIVE: ReadonlySet<DriverInstanceState> = new Set(['pending', 'started', 'running']);

export class LocalDriver implements IaasDriver {
  readonly siteType = 'local' as const;
  readonly config: LocalDriverConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly instances = new Map<string, LocalInstance>();
  private readonly listeners = new Set<DriverListener>();
  private poll: TimerHandle | undefined;
  private closed = false;

  /**
   * `site` is the site's settings (localSiteSettingsSchema), `options` the host's (LOCAL_DEFAULTS
   * fill the rest). Throws InvalidArgumentError for bad values, a missing cliPath, no instance
   * directory at all, or one that cannot be created.
   */
  constructor(site: unknown, options: Partial<LocalDriverOptions> = {}, deps: { clock?: Clock; log?: Logger } = {}) {
    const settings = parseSettings(localSiteSettingsSchema, site, 'local site settings');
    const opts = parseSettings(localOptionsSchema, options, 'local driver options');
    const baseDir = settings.data_dir ?? opts.baseDir;
    if (baseDir === undefined) {
      throw new InvalidArgumentError('local site settings: data_dir: required, since this driver has no default instance directory (baseDir)');
    }
    this.config = {
      ...opts,
      baseDir: resolve(baseDir),
      cliPath: resolve(opts.cliPath),
      capacity: settings.max_instances ?? opts.capacity,
    };
    if (!existsSync(this.config.cliPath)) {
      throw new InvalidArgumentError(`local driver options: cliPath ${this.config.cliPath} does not exist (is the project built?)`);
    }
    if (!existsSync(this.config.nodePath)) {
      throw new InvalidArgumentError(`local driver options: nodePath ${this.config.nodePath} does not exist`);
    }
    try {
      mkdirSync(this.config.baseDir, { recursive: true });
    } catch (err) {
      throw new InvalidArgumentError(`local site settings: data_dir ${this.config.baseDir} cannot be created: ${errorMessage(err)}`, { cause: err });
    }
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log ?? silentLogger;
  }

  async launch(request: LaunchRequest): Promise<DriverInstance[]> {
    this.checkOpen();
    validateLaunchRequest(request);
    if (request.seeds.length === 0) throw new InvalidArgumentError('local instances need at least one seed to join');
    const params = parseSettings(localLaunchParamsSchema, request.params, 'local launch params');
    this.scan();
    const fresh = request.instanceIds.filter((id) => !this.instances.has(id));
    const active = [...this.instances.values()].filter((i) => ACTIVE.has(i.state)).length;
    if (active + fresh.length > this.config.capacity) {
      throw new IaasFullError(
        `local site is full: ${active} of ${this.config.capacity} instances in use, ${fresh.length} more requested`,
        fresh,
      );
    }
    try {
      for (const id of fresh) {
        try {
          this.start(id, params, request.seeds);
        } catch (err) {
          throw new IaasUnavailableError(
            `local launch of ${id} failed: ${errorMessage(err)} (instances launched before it keep running; a retry launches the rest)`,
            [id],
            { cause: err },
          );
        }
      }
    } finally {
      this.armPoll();
    }
    return request.instanceIds.map((id) => this.view(this.instances.get(id)!));
  }

  async terminate(instanceIds: readonly string[]): Promise<DriverInstance[]> {
    this.checkOpen();
    for (const id of instanceIds) validateInstanceId(id);
    this.scan();
    const results = await Promise.allSettled(instanceIds.map((id) => this.terminateOne(id)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    return results.map((r) => (r as PromiseFulfilledResult<DriverInstance>).value);
  }

  async list(): Promise<DriverInstance[]> {
    this.checkOpen();
    this.scan();
    const now = this.clock.now();
    const out: DriverInstance[] = [];
    for (const instance of this.instances.values()) {
      if (instance.removedAt !== undefined && now - instance.removedAt > this.config.retainFinalMs) {
        this.instances.delete(instance.id);
        continue;
      }
      this.refresh(instance);
      out.push(this.view(instance));
    }
    this.armPoll();
    return out;
  }

  async adopt(handles: readonly InstanceHandle[]): Promise<DriverInstance[]> {
    this.checkOpen();
    for (const handle of handles) {
      validateInstanceId(handle.instanceId);
      // A handle's directory is removed on terminate: accept only one that names the instance.
      if (handle.dir !== undefined && (!isAbsolute(handle.dir) || basename(handle.dir) !== handle.instanceId)) {
        throw new InvalidArgumentError(`handle of ${handle.instanceId}: dir ${JSON.stringify(handle.dir)} must be an absolute path ending in the instance id`);
      }
      if (handle.pid !== undefined && !(Number.isSafeInteger(handle.pid) && handle.pid > 0)) {
        throw new InvalidArgumentError(`handle of ${handle.instanceId}: pid must be a positive whole number`);
      }
    }
    const out = handles.map((handle) => {
      const known = this.instances.get(handle.instanceId);
      if (known && known.removedAt === undefined) {
        this.refresh(known);
        return this.view(known);
      }
      const dir = handle.dir ?? join(this.config.baseDir, handle.instanceId);
      const alive = handle.pid !== undefined && isInstanceProcess(handle.pid, handle.instanceId);
      if (!alive && !existsSync(dir)) return known ? this.view(known) : notFoundInstance(handle.instanceId, this.clock.now());
      return this.view(this.load(handle.instanceId, dir, handle.pid));
    });
    this.armPoll();
    return out;
  }

  watch(listener: DriverListener): () => void {
    this.checkOpen();
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.poll?.cancel();
    this.poll = undefined;
    this.listeners.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the local driver is closed');
  }

  /** Starts one worker process. Synchronous from claiming the directory to recording the pid. */
  private start(id: string, params: LocalLaunchParams, seeds: readonly string[]): void {
    const dir = join(this.config.baseDir, id);
    try {
      mkdirSync(dir);
    } catch (err) {
      // Another incarnation of the driver claimed the id first: that launch is this instance.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        this.load(id, dir);
        return;
      }
      throw err;
    }
    const dataDir = join(dir, DATA_DIR);
    mkdirSync(dataDir);
    const now = this.clock.now();
    const args = [
      ...NODE_V8_FLAGS,
      this.config.cliPath,
      'node',
      '--role=worker',
      '--instance-id',
      id,
      '--join',
      seeds.join(','),
      '--data',
      dataDir,
      '--listen',
      `${this.config.listenHost}:0`,
      '--log-level',
      this.config.logLevel,
      ...(params.slots !== undefined ? ['--slots', String(params.slots)] : []),
      ...(params.args ?? []),
    ];
    const logFd = openSync(join(dir, LOG_FILE), 'a');
    let child;
    try {
      // detached: its own process group, so it outlives us and a terminate can signal the whole group;
      // output goes to a file, never a pipe, which would break when this process dies.
      child = spawn(this.config.nodePath, args, { detached: true, stdio: ['ignore', logFd, logFd], env: { ...process.env, ...params.env } });
    } finally {
      closeSync(logFd);
    }
    const instance: LocalInstance = {
      id,
      dir,
      pid: child.pid,
      launchedAt: now,
      state: 'pending',
      since: now,
      scanner: new ReadyScanner(join(dir, LOG_FILE)),
      awaitingExit: true,
    };
    writeRecord(dir, { instanceId: id, pid: child.pid, launchedAt: now });
    this.instances.set(id, instance);
    child.once('error', (err) => {
      instance.exit ??= `could not start: ${err.message}`;
      instance.awaitingExit = false;
      this.refresh(instance);
    });
    child.once('exit', (code, signal) => {
      instance.exit ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
      instance.awaitingExit = false;
      this.refresh(instance);
    });
    child.unref();
    this.log.info({ instanceId: id, pid: child.pid, dir }, 'local instance launched');
  }

  /** Tracks an instance found on disk (or named by a handle), as the IaaS has it now. */
  private load(id: string, dir: string, pidHint?: number): LocalInstance {
    const record = readRecord(dir);
    const outcome = readOutcome(dir);
    const launchedAt = record?.launchedAt ?? mtimeOr(dir, this.clock.now());
    const instance: LocalInstance = {
      id,
      dir,
      pid: record?.pid ?? pidHint,
      launchedAt,
      state: outcome?.state ?? 'pending',
      since: this.clock.now(),
      ...(outcome && { reason: outcome.reason, detail: outcome.detail }),
      scanner: new ReadyScanner(join(dir, LOG_FILE)),
    };
    this.instances.set(id, instance);
    this.refresh(instance);
    this.log.info({ instanceId: id, pid: instance.pid, dir, state: instance.state }, 'local instance adopted');
    return instance;
  }

  /** Finds instance directories under baseDir that this driver does not track yet. */
  private scan(): void {
    let names: string[];
    try {
      names = readdirSync(this.config.baseDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      if (!INSTANCE_ID.test(name)) continue;
      const known = this.instances.get(name);
      // A remembered id whose directory is back was launched again by another incarnation.
      if (known && (known.removedAt === undefined || known.terminating)) continue;
      this.load(name, join(this.config.baseDir, name));
    }
  }

  /** Brings an active instance's state up to date with its process and log. */
  private refresh(instance: LocalInstance): void {
    if (instance.removedAt !== undefined || instance.terminating || isFinal(instance.state)) return;
    const now = this.clock.now();
    // Another incarnation may have been between claiming the directory and recording the pid.
    instance.pid ??= readRecord(instance.dir)?.pid;
    const pid = instance.pid;
    if (pid === undefined) {
      if (instance.exit !== undefined) this.finish(instance, 'failed', 'IAAS_BOOT_FAILED', instance.exit);
      else if (now - instance.launchedAt > this.config.startTimeoutMs) {
        this.finish(instance, 'failed', 'IAAS_BOOT_FAILED', 'the launch was interrupted before its process was recorded');
      }
      return;
    }
    const alive = isInstanceProcess(pid, instance.id);
    // Read the log after the liveness check: a process that printed its ready line and then died is
    // then seen as started before it is seen as gone.
    const ready = instance.scanner.scan();
    if (ready && !instance.ready) {
      instance.ready = ready;
      if (instance.state === 'pending') this.transition(instance, 'started');
    }
    if (!alive) {
      // Dead but not yet reaped: the exit event, due any moment, will say how it ended.
      if (instance.awaitingExit) return;
      const how = instance.exit ?? 'its process is gone';
      if (instance.ready) this.finish(instance, 'terminated', 'EXITED', how);
      else this.finish(instance, 'failed', 'IAAS_BOOT_FAILED', withLog(`${how} before it was ready`, instance));
      return;
    }
    if (instance.state === 'pending' && now - instance.launchedAt > this.config.startTimeoutMs) {
      signalInstance(pid, 'SIGKILL');
      this.finish(instance, 'failed', 'IAAS_TIMEOUT', withLog(`not ready within ${this.config.startTimeoutMs} ms; killed`, instance));
    }
  }

  private terminateOne(id: string): Promise<DriverInstance> {
    const instance = this.instances.get(id);
    if (!instance) return Promise.resolve(notFoundInstance(id, this.clock.now()));
    if (instance.removedAt !== undefined) return Promise.resolve(this.view(instance));
    instance.terminating ??= this.stop(instance).finally(() => {
      instance.terminating = undefined;
    });
    return instance.terminating;
  }

  /** SIGTERM, SIGKILL after the grace, then the directory goes. */
  private async stop(instance: LocalInstance): Promise<DriverInstance> {
    const pid = instance.pid;
    if (pid !== undefined && isInstanceProcess(pid, instance.id)) {
      signalInstance(pid, 'SIGTERM');
      if (!(await this.waitGone(pid, instance.id, this.config.terminateGraceMs))) {
        this.log.warn({ instanceId: instance.id, pid }, 'local instance ignored SIGTERM; killing it');
        signalInstance(pid, 'SIGKILL');
        if (!(await this.waitGone(pid, instance.id, this.config.killTimeoutMs))) {
          throw new IaasTimeoutError(`local instance ${instance.id} (pid ${pid}) still runs ${this.config.killTimeoutMs} ms after SIGKILL`, [instance.id]);
        }
      }
    }
    rmSync(instance.dir, { recursive: true, force: true, maxRetries: 3 });
    instance.removedAt = this.clock.now();
    if (!isFinal(instance.state)) this.finish(instance, 'terminated', 'TERMINATE_REQUESTED', 'terminated on request');
    this.log.info({ instanceId: instance.id, pid }, 'local instance terminated');
    return this.view(instance);
  }

  /** Resolves true once the process is gone, false if it is still there after `timeoutMs`. */
  private waitGone(pid: number, instanceId: string, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.now() + timeoutMs;
    const step = Math.min(EXIT_CHECK_MS, this.config.pollIntervalMs);
    return new Promise((resolvePromise) => {
      const check = (): void => {
        if (!isInstanceProcess(pid, instanceId)) resolvePromise(true);
        else if (this.clock.now() >= deadline) resolvePromise(false);
        else this.clock.setTimer(step, check);
      };
      check();
    });
  }

  /** Keeps one timer running while any instance is pending or started. */
  private armPoll(): void {
    if (this.closed || this.poll) return;
    const watched = (i: LocalInstance): boolean => ACTIVE.has(i.state) && i.removedAt === undefined && !i.terminating;
    if (![...this.instances.values()].some(watched)) return;
    this.poll = this.clock.setTimer(this.config.pollIntervalMs, () => {
      this.poll = undefined;
      for (const instance of this.instances.values()) if (watched(instance)) this.refresh(instance);
      this.armPoll();
    });
  }

  private finish(instance: LocalInstance, state: 'terminated' | 'failed', reason: DriverReason, detail: string): void {
    instance.reason = reason;
    instance.detail = detail;
    if (instance.removedAt === undefined) writeOutcome(instance.dir, { state, reason, detail });
    this.transition(instance, state);
  }

  private transition(instance: LocalInstance, state: DriverInstanceState): void {
    instance.state = state;
    instance.since = this.clock.now();
    if (this.listeners.size === 0) return;
    const view = this.view(instance);
    for (const listener of this.listeners) {
      try {
        listener(view);
      } catch (err) {
        this.log.warn({ err: errorMessage(err), instanceId: instance.id }, 'local driver listener threw');
      }
    }
  }

  private view(instance: LocalInstance): DriverInstance {
    return {
      instanceId: instance.id,
      state: instance.state,
      ...(instance.reason !== undefined && { reason: instance.reason }),
      ...(instance.detail !== undefined && { detail: instance.detail }),
      launchedAt: instance.launchedAt,
      since: instance.since,
      handle: { instanceId: instance.id, ...(instance.pid !== undefined && { pid: instance.pid }), dir: instance.dir },
      ...(instance.ready && { nodeId: instance.ready.nodeId, address: instance.ready.address }),
    };
  }
}

function withLog(text: string, instance: LocalInstance): string {
  const tail = logTail(join(instance.dir, LOG_FILE));
  return tail ? `${text}; log: ${tail}` : text;
}

/** Written whole or not at all (rename), so a reader never sees half a record. */
function writeJson(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(value));
  renameSync(`${path}.tmp`, path);
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, record: InstanceRecord): void {
  writeJson(join(dir, INSTANCE_FILE), record);
}

function readRecord(dir: string): InstanceRecord | undefined {
  const value = readJson(join(dir, INSTANCE_FILE)) as Partial<InstanceRecord> | undefined;
  if (!value || typeof value.launchedAt !== 'number') return undefined;
  return {
    instanceId: String(value.instanceId),
    pid: typeof value.pid === 'number' ? value.pid : undefined,
    launchedAt: value.launchedAt,
  };
}

interface Outcome {
  state: 'terminated' | 'failed';
  reason: DriverReason;
  detail: string;
}

function writeOutcome(dir: string, outcome: Outcome): void {
  try {
    writeJson(join(dir, OUTCOME_FILE), outcome);
  } catch {
    // The directory may be gone already (an operator removed it); the outcome then lives in memory only.
  }
}

function readOutcome(dir: string): Outcome | undefined {
  const value = readJson(join(dir, OUTCOME_FILE)) as Partial<Outcome> | undefined;
  if (!value || (value.state !== 'terminated' && value.state !== 'failed') || typeof value.reason !== 'string') return undefined;
  return { state: value.state, reason: value.reason, detail: String(value.detail ?? '') };
}

function mtimeOr(dir: string, fallback: number): number {
  try {
    return statSync(dir).mtimeMs;
  } catch {
    return fallback;
  }
}
