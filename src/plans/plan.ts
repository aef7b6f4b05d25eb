/**
 * Launch plans: a whole cei system described as ordered levels of services (cloudinit.d's model),
 * followed by what to create in the running system. This file is the contract: the YAML shape, the
 * schema of the file as written, and the Plan that ./load.ts gives the launcher.
 *
 * ```yaml
 * name: local                        # ResourceName
 * description: ...                   # optional
 * globals: {host: 127.0.0.1, n: 2}   # optional; strings, numbers, booleans; may use ${env.*}, ${vars.*}, ${run.*}
 * levels:                            # ordered; a level starts when every service of the one before is ready
 *   - name: seed                     # optional, default level<N> (1-based); no "." in names
 *     services:                      # start in parallel
 *       - name: bootstrap            # unique in the whole plan, also after count expansion
 *         node:                      # a `cei node` started as a local process
 *           role: bootstrap          # bootstrap | control | worker
 *           listen: ${globals.host}:0     # default 127.0.0.1:0; port 0: the real one is known after start
 *           data_dir: ...            # default ${run.dir}/<service name>
 *           join: [...]              # default: the address of every node service of the earlier levels
 *           replicas: 2              # --replicas;  slots: 8 (--slots);  engine_type: default (--engine-type)
 *           args: [--log-level, debug]    # extra flags, appended as given
 *   - name: control
 *     services:
 *       - name: control
 *         count: 2                   # control-0, control-1
 *         node: {role: control}
 *       - name: seed-elsewhere
 *         address: 10.0.0.5:7000     # an already running node: not launched, only verified
 *       - name: feeder
 *         run: node feeder.js ${control-0.address}   # a command (through `sh -c`), e.g. a sensor feeder
 *         ready: test -f /tmp/feeder.ok             # exit 0 = ready (nodes: the gRPC health check by default);
 *                                    # a command still running when ready is long-running: not ready once it dies
 *         terminate: pkill -F /tmp/feeder.pid       # run at teardown before the signals
 *         cwd: ...                   # optional, commands only;  env: {K: v} for commands and nodes
 *         timeout: 60                # seconds readiness may take (default 60)
 *         retries: 0                 # restarts after a failed readiness before the service fails (default 0)
 *         continue_on_error: false   # true: the level goes on past this service's failure
 * sites: {local: SiteDefinition}                       # then, in the running system (applied idempotently):
 * deployable_types: {sleeper: DtDefinition}
 * domains: {sleeper: {definition?, config?}}          # as epum-registry `domain.add` takes them
 * process_definitions: {window-average: ProcessDefinition without id}
 * processes: {average-1: schedule request without upid}
 * streams: {sensor: {retention?: {maxCount?, maxAgeMs?}}}
 * ```
 *
 * References, in any string value (never in keys):
 *   ${globals.x}  ${vars.k} (`--var k=v`)  ${env.VAR}   resolved at load
 *   ${run.dir} ${run.name}                               the run's directory and name: at load when the
 *                                                        caller gives them, else left for the launcher
 *   ${count.index}                                       0..N-1 inside a service with `count`
 *   ${service.attr}  ${level.service.attr}               an attribute of a service of an EARLIER level
 *                                                        (the system objects may use every level)
 * Attributes: node: name, role, listen, data_dir, address (the real listen address), pid;
 * address service: name, address; command: name, pid. `${control.address}` of a counted service is
 * the comma-joined list of its copies' values; `${control-0.address}` one copy's.
 * `$${` is a literal `${`. In `deployable_types`, `${name}` without a dot and `$${` are left as they
 * are: they are the registry's own launch templates (src/actors/dtrs-template.ts), filled at lookup.
 * A whole-string reference to a global keeps the global's type (`replicas: ${globals.n}` is a number);
 * the plan's own whole-number fields also take numeric strings, so `count: ${vars.n}` works.
 *
 * What is known before boot is resolved by loadPlan; what exists only once earlier levels are up (a
 * port-0 node's real address, a pid, ${run.*} when not given) stays in the Plan's strings as
 * canonical `${level.service.attr}` references, each checked, for resolveService / resolveSystem
 * (./resolve.ts) to fill from what the launcher learned.
 */
import { z } from 'zod';
import type { NodeRole } from '../node.js';
import { InvalidArgumentError } from '../errors.js';
import type { SiteDefinition, DtDefinition } from '../actors/dtrs.js';
import type { PartialConfig } from '../actors/epum/protocol.js';
import type { ProcessDefinitionSchema, ScheduleSchema } from '../actors/dispatcher/protocol.js';

/** The roles a plan's node may have; `satisfies` and the check below keep it equal to NodeRole. */
export const PLAN_NODE_ROLES = ['bootstrap', 'control', 'worker'] as const satisfies readonly NodeRole[];
type MissingRole = Exclude<NodeRole, (typeof PLAN_NODE_ROLES)[number]>;
const everyRole: [MissingRole] extends [never] ? true : false = true;
void everyRole;

/** Scopes of references; no level or service may take one of these names. */
export const RESERVED_NAMES = ['globals', 'vars', 'env', 'run', 'count'] as const;

/** Attributes each kind of service has; the ones not known before boot are filled by the launcher. */
export const SERVICE_ATTRIBUTES = {
  node: ['name', 'role', 'listen', 'data_dir', 'address', 'pid'],
  remote: ['name', 'address'],
  command: ['name', 'pid'],
} as const satisfies Record<PlanService['kind'], readonly string[]>;

export const RUN_ATTRIBUTES = ['dir', 'name'] as const;

export const PLAN_DEFAULTS = {
  listen: '127.0.0.1:0',
  /** Seconds a service's readiness may take. */
  timeout: 60,
  retries: 0,
} as const;

// --- the file as written -----------------------------------------------------------------------

const NAME_RULE = 'must be 1-63 letters, digits, "_" or "-", starting with a letter or digit (no ".")';
/** Service and level names: no "." so that `${level.service.attr}` splits one way only. */
export const PlanName = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, { error: NAME_RULE })
  .refine((n) => !(RESERVED_NAMES as readonly string[]).includes(n), { error: `must not be one of ${RESERVED_NAMES.join(', ')} (reference scopes)` });
const KeyName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/, { error: 'must be letters, digits, "_" or "-", starting with a letter or "_"' });
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name (letters, digits, _)' });
const Text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(8192, { error: 'must be at most 8192 characters' });

/** A whole number, also given as a numeric string (what `${vars.n}` gives). */
const whole = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: `must be a whole number >= ${min}` })
      .int({ error: `must be a whole number >= ${min}` })
      .min(min, { error: `must be a whole number >= ${min}` })
      .max(max, { error: `must be at most ${max}` }),
  );
const Seconds = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v),
  z.number({ error: 'must be a number of seconds' }).gt(0, { error: 'must be a number of seconds > 0' }).max(86_400, { error: 'must be at most 86400 seconds' }),
);
const Env = z.record(EnvName, z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string or a number' }).transform(String));

export const NodeSpecSchema = z.strictObject({
  role: z.enum(PLAN_NODE_ROLES, { error: `must be one of ${PLAN_NODE_ROLES.join(', ')}` }),
  listen: Text.default(PLAN_DEFAULTS.listen),
  data_dir: Text.optional(),
  join: z.array(Text, { error: 'must be a list of HOST:PORT addresses' }).max(64).optional(),
  replicas: whole(1, 16).optional(),
  slots: whole(1, 1024).optional(),
  engine_type: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: 'must be an engine type name' }).optional(),
  args: z.array(z.string({ error: 'must be a string' }), { error: 'must be a list of strings' }).max(256).default([]),
});

const KINDS = ['node', 'address', 'run'] as const;

export const ServiceFileSchema = z
  .strictObject({
    name: PlanName,
    count: whole(1, 1000).optional(),
    node: NodeSpecSchema.optional(),
    address: Text.optional(),
    run: Text.optional(),
    ready: Text.optional(),
    terminate: Text.optional(),
    cwd: Text.optional(),
    env: Env.optional(),
    timeout: Seconds.default(PLAN_DEFAULTS.timeout),
    retries: whole(0, 100).default(PLAN_DEFAULTS.retries),
    continue_on_error: z.boolean({ error: 'must be true or false' }).default(false),
  })
  .superRefine((s, ctx) => {
    const kinds = KINDS.filter((k) => s[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: kinds.length > 1 ? [kinds[1]!] : [],
        message: kinds.length > 1 ? `a service is exactly one of node, address, run (has ${kinds.join(' and ')})` : 'missing node, address or run: a service is a node, an already running node, or a command',
      });
      return;
    }
    const only = (field: 'terminate' | 'cwd' | 'env', allowed: ReadonlyArray<(typeof KINDS)[number]>) => {
      if (s[field] !== undefined && !allowed.includes(kinds[0]!)) {
        ctx.addIssue({ code: 'custom', path: [field], message: `only a ${allowed.map((k) => (k === 'run' ? 'command (run)' : k)).join(' or ')} service takes ${field}` });
      }
    };
    only('terminate', ['run']);
    only('cwd', ['run']);
    only('env', ['run', 'node']);
  });
export type ServiceFile = z.output<typeof ServiceFileSchema>;

export const LevelFileSchema = z.strictObject({
  name: PlanName.optional(),
  services: z.array(ServiceFileSchema, { error: 'must be a list of services' }).min(1, { error: 'must list at least one service' }),
});

export const GlobalsSchema = z.record(KeyName, z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, a number or a boolean' }), {
  error: 'must be a map of names to strings or numbers',
});

/** The system objects as written: each value is checked later with its actor's own schema. */
const Objects = z.record(z.string(), z.unknown(), { error: 'must be a map of names to definitions' });

export const PlanFileSchema = z.strictObject({
  name: z.string({ error: 'must be a string' }).regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit' }),
  description: z.string().max(1024).optional(),
  globals: z.unknown().optional(),
  levels: z.array(LevelFileSchema, { error: 'must be a list of levels' }).min(1, { error: 'must list at least one level' }),
  sites: Objects.optional(),
  deployable_types: Objects.optional(),
  domains: Objects.optional(),
  process_definitions: Objects.optional(),
  processes: Objects.optional(),
  streams: Objects.optional(),
});
export type PlanFile = z.output<typeof PlanFileSchema>;

/** The sections of the system objects, in the order the launcher should apply them. */
export const SYSTEM_SECTIONS = ['sites', 'deployable_types', 'domains', 'process_definitions', 'processes', 'streams'] as const;
export type SystemSection = (typeof SYSTEM_SECTIONS)[number];

// --- the Plan the launcher gets ----------------------------------------------------------------

/** Where something was written: for messages that name it. */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
  /** The field path in the file, e.g. `levels[1].services[0]`. */
  path: string;
}

interface ServiceCommon {
  /** The expanded name (`control-1`), unique in the plan. */
  name: string;
  /** The name as written (`control`); equal to `name` without `count`. */
  base: string;
  /** The copy's index under `count`; undefined without it. */
  index?: number;
  level: string;
  levelIndex: number;
  /** A readiness command (exit 0 = ready); for nodes, replaces the gRPC health check. */
  ready?: string;
  timeout: number;
  retries: number;
  continue_on_error: boolean;
  source: SourceLocation;
}

export interface NodeService extends ServiceCommon {
  kind: 'node';
  role: NodeRole;
  listen: string;
  data_dir: string;
  /** Seeds; an entry may hold several comma-separated addresses (a counted service's list). */
  join: string[];
  replicas?: number;
  slots?: number;
  engine_type?: string;
  args: string[];
  env: Record<string, string>;
}

export interface RemoteService extends ServiceCommon {
  kind: 'remote';
  address: string;
}

export interface CommandService extends ServiceCommon {
  kind: 'command';
  run: string;
  terminate?: string;
  cwd?: string;
  env: Record<string, string>;
}

export type PlanService = NodeService | RemoteService | CommandService;

export interface PlanLevel {
  name: string;
  index: number;
  services: PlanService[];
}

export type ProcessDefinitionBody = Omit<z.output<typeof ProcessDefinitionSchema>, 'id'>;
export type ScheduleBody = Omit<z.output<typeof ScheduleSchema>, 'upid'>;
export interface DomainBody {
  definition?: string;
  config?: PartialConfig;
}
export interface StreamBody {
  retention?: { maxCount?: number; maxAgeMs?: number };
}

/** What to create once every level is up, as the actors' schemas parsed it (defaults filled). */
export interface PlanSystem {
  sites: Record<string, SiteDefinition>;
  deployable_types: Record<string, DtDefinition>;
  domains: Record<string, DomainBody>;
  process_definitions: Record<string, ProcessDefinitionBody>;
  processes: Record<string, ScheduleBody>;
  streams: Record<string, StreamBody>;
}

export interface Plan {
  name: string;
  description?: string;
  /** The file it was read from (absolute). */
  file: string;
  globals: Record<string, string | number | boolean>;
  levels: PlanLevel[];
  system: PlanSystem;
  /** Where each system object was written, by `section.name` (e.g. `domains.sleeper`). */
  objectSources: Record<string, SourceLocation>;
}

// --- errors ------------------------------------------------------------------------------------

export interface PlanProblem {
  file: string;
  line: number;
  col: number;
  /** The field path, e.g. `levels[1].services[0].node.role`; empty for the file as a whole. */
  path: string;
  reason: string;
}

export function formatProblem(p: PlanProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.path ? `${p.path}: ` : ''}${p.reason}`;
}

/** Thrown when a plan cannot be used: every problem found, each naming the file, line, column and field. */
export class PlanError extends InvalidArgumentError {
  override name = 'PlanError';
  readonly problems: readonly PlanProblem[];
  constructor(problems: readonly PlanProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}
