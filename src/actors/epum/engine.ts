/**
 * The decision-engine contract of EPU management. An engine is a pure function: given its conf, its
 * own persisted state, the domain's instances, the sensor readings and the time, it returns the
 * launches and terminations to ask for and its next state. The epum actor around it does all I/O
 * (provisioner calls, persistence, retries), as the original EPU split its controller into an outer
 * shell and the engine. Engines therefore never read the clock, never keep module state and never
 * throw on a well-formed input; the same input always yields the same decision.
 *
 * Contract the actor keeps for every engine:
 * - `instances` lists every instance of the domain the actor knows of, including launches it has
 *   asked for but the provisioner has not yet reported (as REQUESTING). An engine counts those as
 *   pending, so it never launches the same deficit twice across ticks.
 * - Terminal records (TERMINATED, FAILED, REJECTED) may stay in `instances` for a while; engines read
 *   failures and the vars of replaced instances from them.
 * - A destroy action may name an instance already being terminated (a zombie is killed again); the
 *   actor drops ids whose termination is still in flight.
 * - `state` is what the previous decide returned (or `initialState(conf)` for a new domain). It is
 *   JSON, so the actor stores it as it is and a fail-over continues where the last tick left off.
 * - `conf` is the output of `validateConf`. A reconfigure (see mergeEngineConf) hands the new conf
 *   to the next decide with the existing state; each engine copes with a state made under an older
 *   conf.
 *
 * This module also holds the engine registry and the loader for user modules (`--engines path.js`).
 */
import { z } from 'zod';
import { InvalidArgumentError, NotFoundError } from '../../errors.js';
import type { InstanceState } from '../provisioner-states.js';
import { loadUserModule } from '../load.js';
// The built-in engines import this module back for its types and helper functions. They only call
// those helpers from inside functions or through hoisted function declarations that touch nothing
// but `z`, so this import cycle is safe whichever module loads first; keep it that way (no
// module-level const of this file may be needed while an engine module is being evaluated).
import { npreservingEngine } from './engine-npreserving.js';
import { queuelenEngine } from './engine-queuelen.js';
import { sensorEngine } from './engine-sensor.js';
import { overflowEngine } from './engine-overflow.js';

// ---------------------------------------------------------------------------------------------
// The domain as an engine sees it
// ---------------------------------------------------------------------------------------------

/** An engine sees each instance in the state the provisioner reports. */
export type { InstanceState };

/** Health as EPU management judges it from heartbeats and membership events. */
export type HealthState = 'OK' | 'OUT_OF_CONTACT' | 'MISSING' | 'ZOMBIE' | 'PROCESS_ERROR';

/** One instance of the domain. Field names follow the wire (snake_case), as the actor gets them. */
export type EngineInstance = {
  id: string;
  state: InstanceState;
  /** The provisioner's reason for a failure state, e.g. IAAS_FULL, DTRS_LOOKUP_FAILED. */
  state_desc?: string;
  health: HealthState;
  site: string;
  deployable_type: string;
  /** When the launch was asked for, ms since the epoch. */
  launch_time: number;
  /** The launch variables it was started with (unique values among them). */
  vars: Readonly<Record<string, string>>;
};

/** One reading of a sensor. Per-instance metrics (from heartbeats) name their instance. */
export type SensorSample = {
  /** ms since the epoch. */
  time: number;
  value: number;
  instance_id?: string;
};

/**
 * Sensor series by name: queue lengths (a stream subscription or an actor's mailbox) and metrics
 * (CPU load, free memory ...). Samples may come in any order; engines look at their timestamps.
 */
export type SensorReadings = Readonly<Record<string, readonly SensorSample[]>>;

/** Any JSON value: what an engine state may be made of, so that the actor can store it unchanged. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type EngineInput<C, S> = {
  conf: C;
  state: S;
  instances: readonly EngineInstance[];
  sensors: SensorReadings;
  /** ms since the epoch, from the actor's clock; engines never read the time themselves. */
  now: number;
};

/** Ask the provisioner for `count` instances of a deployable type at a site, each with `vars`. */
export type LaunchAction = {
  type: 'launch';
  site: string;
  deployable_type: string;
  count: number;
  vars: Record<string, string>;
};

/** Ask the provisioner to terminate these instances. */
export type DestroyAction = { type: 'destroy'; instance_ids: string[] };

export type EngineAction = LaunchAction | DestroyAction;

export type Decision<S> = { actions: EngineAction[]; state: S };

export type ConfCheck<C> = { ok: true; conf: C } | { ok: false; errors: string[] };

/**
 * A decision engine. All three functions are pure. `validateConf` never throws: it returns either the
 * typed conf (defaults filled in) or one message per problem, each naming the key at fault.
 */
export interface Engine<C = unknown, S extends Json = Json> {
  readonly name: string;
  validateConf(conf: unknown): ConfCheck<C>;
  initialState(conf: C): S;
  decide(input: EngineInput<C, S>): Decision<S>;
}

// ---------------------------------------------------------------------------------------------
// Conf: validation messages and reconfiguration
// ---------------------------------------------------------------------------------------------

/**
 * Validates `conf` against a zod schema and turns every issue into a message that names the key:
 * `missing required key "preserve_n"`, `unknown key "preserveN"`, `"sites[1].size" must be a whole
 * number >= 0 (got -1)`.
 */
export function checkConf<T>(schema: z.ZodType<T>, conf: unknown): ConfCheck<T> {
  const result = schema.safeParse(conf);
  if (result.success) return { ok: true, conf: result.data };
  return { ok: false, errors: result.error.issues.flatMap((issue) => describeIssue(issue, conf)) };
}

/** Like validateConf, but throws InvalidArgumentError with all messages; what request handlers want. */
export function parseEngineConf<C>(engine: Engine<C, Json>, conf: unknown): C {
  const check = engine.validateConf(conf);
  if (check.ok) return check.conf;
  throw new InvalidArgumentError(`engine_conf for "${engine.name}": ${check.errors.join('; ')}`);
}

/**
 * Applies a reconfigure to an engine conf the way the original EPU did: each top-level key of the
 * patch replaces that key whole (no deep merge, so a list is never half-updated); a key set to null
 * is removed, which is how an optional key such as `unique_values` is switched off. Validate the
 * result with the engine before storing it.
 */
export function mergeEngineConf(current: Readonly<Record<string, unknown>>, patch: Readonly<Record<string, unknown>>): Record<string, unknown> {
  // A Map and fromEntries, not assignment: a "__proto__" key in a JSON patch stays a plain key.
  const merged = new Map(Object.entries(current));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key);
    else merged.set(key, value);
  }
  return Object.fromEntries(merged);
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string[] {
  const key = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `unknown key "${key === '' ? k : `${key}.${k}`}"`);
  }
  const value = valueAt(input, issue.path);
  // Cross-field rules (custom issues) say what they compare; a value would only confuse them.
  const got = issue.code === 'custom' || value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  if (key === '') return [`engine_conf ${issue.message}${got}`];
  if (issue.code === 'invalid_type' && value === undefined) return [`missing required key "${key}"`];
  return [`"${key}" ${issue.message}${got}`];
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur = input;
  for (const part of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return cur;
}

// Schema pieces shared by the engines. Counts may arrive as numeric strings from `key=value` command
// lines (the original EPU accepted "4" for 4); anything else keeps its type and fails clearly.

function numericString(v: unknown): unknown {
  return typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
}

/** An engine conf: an object that allows no key it does not know, so a misspelt key is an error. */
export function confObject<S extends z.ZodRawShape>(shape: S, what = 'an object like {"key": value}') {
  return z.strictObject(shape, { error: `must be ${what}` });
}

/** A whole number >= min (default 0). */
export function wholeNumber(min = 0): z.ZodType<number> {
  return z.preprocess(
    numericString,
    z
      .number({ error: `must be a whole number >= ${min}` })
      .int({ error: `must be a whole number >= ${min}` })
      .min(min, { error: `must be a whole number >= ${min}` }),
  );
}

/** Any finite number. */
export function finiteNumber(): z.ZodType<number> {
  return z.preprocess(numericString, z.number({ error: 'must be a finite number' }).finite({ error: 'must be a finite number' }));
}

/** A duration in seconds (>= 0, fractions allowed). */
export function seconds(): z.ZodType<number> {
  return z.preprocess(
    numericString,
    z.number({ error: 'must be a number of seconds >= 0' }).finite({ error: 'must be a number of seconds >= 0' }).min(0, { error: 'must be a number of seconds >= 0' }),
  );
}

/** A non-empty string: names of sites, deployable types, queues, metrics. */
export function nonEmptyString(): z.ZodString {
  return z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' });
}

/** A list of distinct non-empty strings. */
export function distinctStrings(): z.ZodType<string[]> {
  return z
    .array(nonEmptyString(), { error: 'must be a list of strings' })
    .refine((xs) => new Set(xs).size === xs.length, { error: 'must not repeat a value' });
}

// ---------------------------------------------------------------------------------------------
// Reading the domain: which instances count, which must go
// ---------------------------------------------------------------------------------------------

/** States in which an instance is on its way up: counted, but not yet doing work. */
export function isPendingState(state: InstanceState): boolean {
  return state === 'REQUESTING' || state === 'REQUESTED' || state === 'ERROR_RETRYING' || state === 'PENDING' || state === 'STARTED';
}

export function isPending(i: EngineInstance): boolean {
  return isPendingState(i.state);
}

/** Unhealthy beyond waiting for: OUT_OF_CONTACT still counts, these are replaced. */
function isUnhealthy(i: EngineInstance): boolean {
  return i.health === 'MISSING' || i.health === 'ZOMBIE' || i.health === 'PROCESS_ERROR';
}

/** What every engine starts from: the instances that count toward its size and those to terminate. */
export type Census = {
  /** Pending or RUNNING and not unhealthy: the domain's current size. */
  counted: EngineInstance[];
  /**
   * To terminate whatever the engine decides: unhealthy live instances, RUNNING_FAILED ones (they may
   * still hold an IaaS instance) and zombies in any state (heard from after they were terminated).
   */
  doomed: EngineInstance[];
};

export function census(instances: readonly EngineInstance[]): Census {
  const counted: EngineInstance[] = [];
  const doomed: EngineInstance[] = [];
  for (const i of instances) {
    const live = isPending(i) || i.state === 'RUNNING';
    if (i.health === 'ZOMBIE' || i.state === 'RUNNING_FAILED' || (live && isUnhealthy(i))) doomed.push(i);
    else if (live) counted.push(i);
  }
  return { counted, doomed };
}

/** Newest launch first; ties broken by id so that a decision never depends on input order. */
export function newestFirst(a: EngineInstance, b: EngineInstance): number {
  return b.launch_time - a.launch_time || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * Chooses `n` of `candidates` to terminate when shrinking: those the user marked retirable first (in
 * the order given), then the newest, which are the least likely to have done work yet.
 */
export function pickVictims(candidates: readonly EngineInstance[], n: number, retirable: readonly string[] = []): EngineInstance[] {
  if (n <= 0) return [];
  const byId = new Map(candidates.map((i) => [i.id, i]));
  const chosen: EngineInstance[] = [];
  for (const id of retirable) {
    const i = byId.get(id);
    if (i && chosen.length < n) {
      chosen.push(i);
      byId.delete(id);
    }
  }
  const rest = [...byId.values()].sort(newestFirst);
  return chosen.concat(rest.slice(0, n - chosen.length));
}

/** The most recent sample of a series, or undefined if it has none. */
export function latestSample(series: readonly SensorSample[] | undefined): SensorSample | undefined {
  let latest: SensorSample | undefined;
  for (const s of series ?? []) if (!latest || s.time > latest.time) latest = s;
  return latest;
}

/** Builds the action list: at most one destroy (ids in the order chosen, each once), launches after. */
export function actionsFor(destroy: readonly EngineInstance[], launches: readonly LaunchAction[]): EngineAction[] {
  const actions: EngineAction[] = [];
  const ids = [...new Set(destroy.map((i) => i.id))];
  if (ids.length > 0) actions.push({ type: 'destroy', instance_ids: ids });
  for (const l of launches) if (l.count > 0) actions.push(l);
  return actions;
}

export function clamp(n: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, n));
}

// ---------------------------------------------------------------------------------------------
// The registry and user modules
// ---------------------------------------------------------------------------------------------

const ENGINE_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

function isEngine(v: unknown): v is Engine {
  const e = v as Engine | undefined;
  return (
    !!e &&
    typeof e === 'object' &&
    typeof e.name === 'string' &&
    typeof e.validateConf === 'function' &&
    typeof e.initialState === 'function' &&
    typeof e.decide === 'function'
  );
}

/**
 * Engines by name. One registry per EPU management instance, not a module-level global, so that two
 * systems in one process (tests, embedded use) never see each other's user engines.
 */
export class EngineRegistry {
  private readonly engines = new Map<string, Engine>();

  /** Throws InvalidArgumentError for a malformed engine, a bad name or a name already taken. */
  registerEngine(name: string, engine: Engine): void {
    if (!ENGINE_NAME.test(name)) {
      throw new InvalidArgumentError(`decision engine name "${name}" must start with a letter and use only letters, digits, "_", "." and "-"`);
    }
    if (!isEngine(engine)) {
      throw new InvalidArgumentError(`decision engine "${name}" must be an object with name, validateConf, initialState and decide`);
    }
    if (this.engines.has(name)) throw new InvalidArgumentError(`decision engine "${name}" is already registered`);
    this.engines.set(name, engine);
  }

  /** Throws NotFoundError naming the engines there are. */
  getEngine(name: string): Engine {
    const engine = this.engines.get(name);
    if (!engine) throw new NotFoundError(`unknown decision engine "${name}" (known: ${this.names().join(', ')})`);
    return engine;
  }

  hasEngine(name: string): boolean {
    return this.engines.has(name);
  }

  names(): string[] {
    return [...this.engines.keys()].sort();
  }
}

/** The engines every registry starts with. A function, not a constant: see the import note above. */
export function builtinEngines(): Engine[] {
  return [npreservingEngine, queuelenEngine, sensorEngine, overflowEngine];
}

/** A registry holding the built-in engines under their names. */
export function createEngineRegistry(): EngineRegistry {
  const registry = new EngineRegistry();
  for (const engine of builtinEngines()) registry.registerEngine(engine.name, engine);
  return registry;
}

/**
 * Loads decision engines from a user module given with --engines. The module exports them as its
 * default export (one engine or an array) or as a named export `engines` (an array); each is an
 * object with name, validateConf, initialState and decide. Register them with
 * `registry.registerEngine(e.name, e)`.
 */
export function loadEngineModule(path: string): Promise<Engine[]> {
  return loadUserModule('--engines', path, 'engines', isEngine, 'decision engines (objects with name, validateConf, initialState and decide)');
}
