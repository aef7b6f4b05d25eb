/**
 * Run records: what `cei launch` started, kept in a LevelDB under the user's cei directory
 * (`<home>/runs.db`) so that status, repair and teardown (and a launch run again) find it.
 *
 * Layout (JSON values):
 *   run/<run>                RunRecord       one per run
 *   svc/<run>/<level index, 3 digits>/<service>   ServiceRecord   one per expanded service
 *
 * The store is opened for one command and closed after (`withRunStore`): LevelDB allows one
 * process at a time, so two commands on the same home run one after the other, and a second one
 * fails fast with a clear error instead of waiting. Every record read is checked against its
 * schema: a damaged one is refused with its key and field (fields added by later versions pass).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { z } from 'zod';
import { FailedPreconditionError, NotFoundError, errorMessage } from '../errors.js';
import type { PlanService } from '../plans/plan.js';
import { zodReason } from '../actors/zod-reason.js';

/**
 * A run's lifecycle: booting -> up | failed; failed -> booting (launched again); up -> booting
 * (launched again, repaired); any -> torn-down; torn-down -> booting (launched again).
 */
export type RunState = 'booting' | 'up' | 'failed' | 'torn-down';

/**
 * A service's lifecycle: started (its process runs, or for an address service: being checked) ->
 * verified (its readiness check passed) | failed (it did not, with a reason); any -> stopped (teardown).
 */
export type ServiceState = 'started' | 'verified' | 'failed' | 'stopped';

export interface RunRecord {
  name: string;
  /** The plan file, absolute. */
  plan: string;
  /** The plan's own name. */
  planName: string;
  /** `--var` values the run was launched with (a later launch adds to and overrides them). */
  vars: Record<string, string>;
  dir: string;
  state: RunState;
  /** Why the run failed, when it did. */
  reason?: string;
  /**
   * Set while the dispatcher's system boot that a whole-run restart started has not been ended: the
   * launch that ends the boot (this one or a later one, if this one fails) clears it.
   */
  systemBoot?: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface ServiceRecord {
  run: string;
  name: string;
  level: string;
  levelIndex: number;
  kind: PlanService['kind'];
  state: ServiceState;
  pid?: number;
  /** The address others reach a node at (nodes, address services). */
  address?: string;
  /** The cluster node id a node printed in its ready line. */
  nodeId?: string;
  data_dir?: string;
  /** Where its stdout and stderr go. */
  log?: string;
  /** The resolved commands of a command service (`run`, `terminate`) and the readiness command of any service, for status, repair and teardown. */
  command?: string;
  terminate?: string;
  ready?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** The attributes later levels may refer to (`${level.service.attr}`), as strings. */
  attributes: Record<string, string>;
  /**
   * A command whose process still ran when it was verified: a long-running service (a feeder, a
   * server), not ready once its process is gone whatever its `ready` command says. A command that
   * had exited 0 by then was a one-shot job, judged by its `ready` command alone.
   */
  longRunning?: boolean;
  reason?: string;
  startedAt?: number;
  verifiedAt?: number;
  updatedAt: number;
}

const Strings = z.record(z.string(), z.string());
const Time = z.number().nonnegative();

const RunRecordSchema = z.object({
  name: z.string().min(1),
  plan: z.string().min(1),
  planName: z.string(),
  vars: Strings,
  dir: z.string().min(1),
  state: z.enum(['booting', 'up', 'failed', 'torn-down']),
  reason: z.string().optional(),
  systemBoot: z.boolean().optional(),
  createdAt: Time,
  updatedAt: Time,
}) satisfies z.ZodType<RunRecord>;

const ServiceRecordSchema = z.object({
  run: z.string().min(1),
  name: z.string().min(1),
  level: z.string(),
  levelIndex: z.number().int().nonnegative(),
  kind: z.enum(['node', 'remote', 'command']),
  state: z.enum(['started', 'verified', 'failed', 'stopped']),
  pid: z.number().int().positive().optional(),
  address: z.string().optional(),
  nodeId: z.string().optional(),
  data_dir: z.string().optional(),
  log: z.string().optional(),
  command: z.string().optional(),
  terminate: z.string().optional(),
  ready: z.string().optional(),
  cwd: z.string().optional(),
  env: Strings.optional(),
  attributes: Strings,
  longRunning: z.boolean().optional(),
  reason: z.string().optional(),
  startedAt: Time.optional(),
  verifiedAt: Time.optional(),
  updatedAt: Time,
}) satisfies z.ZodType<ServiceRecord>;

const runKey = (run: string) => `run/${run}`;
const svcPrefix = (run: string) => `svc/${run}/`;
const svcKey = (s: Pick<ServiceRecord, 'run' | 'levelIndex' | 'name'>) => `${svcPrefix(s.run)}${String(s.levelIndex).padStart(3, '0')}/${s.name}`;

export class RunStore {
  private constructor(
    private readonly db: Level<string, string>,
    private readonly home: string,
  ) {}

  /** The record under `key` as its schema has it; a damaged one is refused, naming it. */
  private checked<T>(schema: z.ZodType<T>, key: string, text: string): T {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new FailedPreconditionError(`the run records in ${this.home} hold a damaged entry "${key}": not JSON (${errorMessage(err)})`);
    }
    const r = schema.safeParse(value);
    if (!r.success) throw new FailedPreconditionError(`the run records in ${this.home} hold a damaged entry "${key}": ${zodReason(r.error)}`);
    return r.data;
  }

  static async open(home: string): Promise<RunStore> {
    mkdirSync(home, { recursive: true });
    const db = new Level<string, string>(join(home, 'runs.db'), { valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new FailedPreconditionError(`cannot open the run records in ${home}: ${errorMessage(cause ?? err)} (is another cei command using this home?)`);
    }
    return new RunStore(db, home);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async getRun(name: string): Promise<RunRecord | undefined> {
    const value = await this.db.get(runKey(name));
    return value === undefined ? undefined : this.checked(RunRecordSchema, runKey(name), value);
  }

  async requireRun(name: string): Promise<RunRecord> {
    const run = await this.getRun(name);
    if (!run) throw new NotFoundError(`no run "${name}" (see cei runs)`);
    return run;
  }

  async putRun(run: RunRecord): Promise<void> {
    await this.db.put(runKey(run.name), JSON.stringify({ ...run, updatedAt: Date.now() }));
  }

  async listRuns(): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for await (const [key, value] of this.db.iterator({ gte: 'run/', lt: 'run0' })) out.push(this.checked(RunRecordSchema, key, value));
    return out;
  }

  /** The run's services, in level order. */
  async services(run: string): Promise<ServiceRecord[]> {
    const out: ServiceRecord[] = [];
    for await (const [key, value] of this.db.iterator({ gte: svcPrefix(run), lt: `${svcPrefix(run)}\xff` })) out.push(this.checked(ServiceRecordSchema, key, value));
    return out;
  }

  async putService(s: ServiceRecord): Promise<void> {
    await this.db.put(svcKey(s), JSON.stringify({ ...s, updatedAt: Date.now() }));
  }

  async deleteService(s: ServiceRecord): Promise<void> {
    await this.db.del(svcKey(s));
  }
}

/** Opens the store under `home` for the duration of `fn`, and closes it after. */
export async function withRunStore<T>(home: string, fn: (store: RunStore) => Promise<T>): Promise<T> {
  const store = await RunStore.open(home);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
