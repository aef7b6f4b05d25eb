/**
 * Reading a launch plan: YAML -> a validated, expanded Plan (./plan.ts) with every reference that
 * can be resolved before boot resolved, or a PlanError naming every problem as
 * `file:line:col: field.path: reason`. Nothing is started; the only I/O is reading the file.
 *
 * Passes, each on the output of the one before:
 *   1. YAML (a syntax error stops here), with a LineCounter so every node maps to its line and column
 *   2. globals, then `${globals|vars|env|run.*}` everywhere (keeping the type of a whole-string global)
 *   3. the file's schema (plan.ts); a problem here stops, since later passes rely on the shape
 *   4. count expansion (`${count.index}`), duplicate names, then level by level: service references
 *      (earlier levels only), defaults (data_dir, join), addresses, and what each service offers to
 *      later levels
 *   5. the system objects, each checked with its actor's own schema
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { formatPath, zodReason } from '../actors/zod-reason.js';
import { ResourceName } from '../actors/message-schema.js';
import { DtDefinitionSchema, SiteDefinitionSchema } from '../actors/dtrs.js';
import { RegistryMessageSchema, type PartialConfig } from '../actors/epum/protocol.js';
import { builtinEngines } from '../actors/epum/engine.js';
import { ProcessDefinitionSchema, ScheduleSchema } from '../actors/dispatcher/protocol.js';
import { StreamMessageSchema } from '../actors/stream.js';
import {
  GlobalsSchema,
  PlanError,
  PlanFileSchema,
  RESERVED_NAMES,
  RUN_ATTRIBUTES,
  SERVICE_ATTRIBUTES,
  SYSTEM_SECTIONS,
  type Plan,
  type PlanFile,
  type PlanLevel,
  type PlanProblem,
  type PlanService,
  type PlanSystem,
  type ServiceFile,
  type SourceLocation,
  type SystemSection,
} from './plan.js';
import { addressError, hasRefs, mapStrings, refText, staticAddress, substitute, type Decision, type Scalar } from './resolve.js';

export interface LoadOptions {
  /** `--var k=v` values, for `${vars.k}`. */
  vars?: Readonly<Record<string, string>>;
  /** The environment for `${env.VAR}` (the CLI passes process.env; nothing is read implicitly). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The run's directory and name when known; else `${run.*}` stays for the launcher. */
  run?: { dir: string; name: string };
}

/** Reads and loads the plan at `path`; see parsePlan. */
export async function loadPlan(path: string, options: LoadOptions = {}): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PlanError([{ file: path, line: 1, col: 1, path: '', reason: `cannot read the plan: ${errorMessage(err)}` }]);
  }
  return parsePlan(text, path, options);
}

// --- locations ---------------------------------------------------------------------------------

/** Maps a field path of the document to where it was written; a missing field to its nearest parent. */
class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly file: string,
  ) {}

  position(path: readonly PropertyKey[]): { line: number; col: number } {
    let node: unknown = this.doc.contents;
    let at = (node as { range?: [number] } | null)?.range?.[0] ?? 0;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
        if (!pair) break;
        at = (pair.key as { range?: [number] } | null)?.range?.[0] ?? at;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
        node = node.items[seg];
        at = (node as { range?: [number] } | null)?.range?.[0] ?? at;
      } else {
        break;
      }
    }
    return this.lines.linePos(at);
  }

  source(path: readonly PropertyKey[]): SourceLocation {
    return { file: this.file, ...this.position(path), path: formatPath(path) };
  }

  problem(path: readonly PropertyKey[], reason: string): PlanProblem {
    return { file: this.file, ...this.position(path), path: formatPath(path), reason };
  }
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** One problem per zod issue (one per unknown key), located at its field. */
function zodProblems(error: z.ZodError, root: readonly PropertyKey[], input: unknown, loc: Locator): PlanProblem[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => loc.problem([...root, ...issue.path, k], 'unknown field'));
    const path = [...root, ...issue.path];
    const missing = isMissing(issue, input);
    return [loc.problem(path, missing ? 'required field is missing' : zodReason(new z.ZodError([{ ...issue, path: [] }])))];
  });
}

/** A required field that is not there: zod reports it as a bad type or value of `undefined`. */
function isMissing(issue: z.core.$ZodIssue, input: unknown): boolean {
  return (issue.code === 'invalid_type' || issue.code === 'invalid_value') && valueAt(input, issue.path) === undefined;
}

function sortProblems(problems: PlanProblem[]): PlanProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}

// --- the passes --------------------------------------------------------------------------------

/** Loads a plan from its text; `file` names it in messages. Throws PlanError. */
export function parsePlan(text: string, file: string, options: LoadOptions = {}): Plan {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const loc = new Locator(doc, lines, file);
  if (doc.errors.length > 0) {
    throw new PlanError(doc.errors.map((e) => ({ file, ...lines.linePos(e.pos[0]), path: '', reason: `YAML: ${e.message.split('\n')[0]}` })));
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new PlanError([loc.problem([], 'a plan is a map with name, levels and optional globals and system objects')]);
  }

  // 2. globals, then the static scopes everywhere.
  const problems: PlanProblem[] = [];
  const rawGlobals = (raw as Record<string, unknown>).globals;
  const globals: Record<string, Scalar> = {};
  if (rawGlobals !== undefined) {
    const g = GlobalsSchema.safeParse(rawGlobals);
    if (!g.success) problems.push(...zodProblems(g.error, ['globals'], rawGlobals, loc));
    else {
      for (const [k, v] of Object.entries(g.data)) {
        globals[k] = typeof v === 'string' ? substituteAt(v, ['globals', k], staticDecider(undefined, options, 'globals'), problems, loc) : v;
      }
    }
  }
  const substituted = mapStrings(raw, [], (s, path) => (path[0] === 'globals' ? s : substituteAt(s, path, staticDecider(globals, options, 'plan'), problems, loc)));
  if (problems.length > 0) throw new PlanError(sortProblems(problems));

  // 3. shape.
  const parsed = PlanFileSchema.safeParse(substituted);
  if (!parsed.success) throw new PlanError(sortProblems(zodProblems(parsed.error, [], substituted, loc)));

  // 4 and 5.
  const levels = buildLevels(parsed.data, loc, options, problems);
  const { system, objectSources } = buildSystem(parsed.data, levels, loc, options, problems);
  if (problems.length > 0) throw new PlanError(sortProblems(problems));
  return {
    name: parsed.data.name,
    ...(parsed.data.description !== undefined ? { description: parsed.data.description } : {}),
    file: resolvePath(file),
    globals,
    levels,
    system,
    objectSources,
  };
}

function substituteAt(s: string, path: readonly PropertyKey[], decide: (ref: readonly string[]) => Decision, problems: PlanProblem[], loc: Locator): Scalar {
  const r = substitute(s, decide);
  for (const e of r.errors) problems.push(loc.problem(path, e));
  return r.value;
}

function runDecision(ref: readonly string[], options: LoadOptions): Decision {
  const attr = ref[1] as (typeof RUN_ATTRIBUTES)[number];
  if (ref.length !== 2 || !RUN_ATTRIBUTES.includes(attr)) return { error: `${refText(ref)}: the run has ${RUN_ATTRIBUTES.map((a) => `\${run.${a}}`).join(' and ')}` };
  return options.run ? { value: options.run[attr] } : 'keep';
}

/** Pass 2: globals (absent while the globals themselves are done), vars, env and run. */
function staticDecider(globals: Record<string, Scalar> | undefined, options: LoadOptions, where: 'globals' | 'plan'): (ref: readonly string[]) => Decision {
  return (ref) => {
    const [scope, key] = ref;
    switch (scope) {
      case 'globals':
        if (!globals) return { error: `${refText(ref)}: globals may use \${vars.*}, \${env.*} and \${run.*} only` };
        if (ref.length !== 2) return { error: `${refText(ref)}: a global is \${globals.NAME}` };
        if (!Object.hasOwn(globals, key!)) return { error: `${refText(ref)}: unknown global "${key}"${list(' (globals: ', Object.keys(globals), ')')}` };
        return { value: globals[key!]! };
      case 'vars':
        if (ref.length !== 2) return { error: `${refText(ref)}: a variable is \${vars.NAME}` };
        if (!options.vars || !Object.hasOwn(options.vars, key!)) return { error: `${refText(ref)}: no --var ${key}=... was given` };
        return { value: options.vars[key!]! };
      case 'env': {
        if (ref.length !== 2) return { error: `${refText(ref)}: an environment variable is \${env.NAME}` };
        const v = options.env?.[key!];
        return v === undefined ? { error: `${refText(ref)}: environment variable ${key} is not set` } : { value: v };
      }
      case 'run':
        return runDecision(ref, options);
      default:
        return where === 'globals' ? { error: `${refText(ref)}: globals may use \${vars.*}, \${env.*} and \${run.*} only` } : 'keep';
    }
  };
}

function list(before: string, items: readonly string[], after: string): string {
  return items.length > 0 ? `${before}${items.join(', ')}${after}` : '';
}

/** A service after count expansion, before its references are resolved. */
interface Expanded {
  name: string;
  base: string;
  index?: number;
  levelIndex: number;
  level: string;
  file: ServiceFile;
  /** Its path in the file: levels[i].services[j]. */
  path: PropertyKey[];
}

/** What a booted-or-known service offers later ones: value (a template) per attribute. */
type Offers = Record<string, string>;

interface Index {
  byName: Map<string, Expanded>;
  /** Counted services' base names -> their copies. */
  byBase: Map<string, Expanded[]>;
  levels: string[];
  offers: Map<string, Offers>;
}

function buildLevels(plan: PlanFile, loc: Locator, options: LoadOptions, problems: PlanProblem[]): PlanLevel[] {
  const index: Index = { byName: new Map(), byBase: new Map(), levels: [], offers: new Map() };
  const expandedLevels: Expanded[][] = [];
  const levelAt = new Map<string, number>();
  const taken = new Map<string, PropertyKey[]>();
  const claim = (name: string, path: PropertyKey[], what: string) => {
    const first = taken.get(name);
    if (first) {
      const at = loc.position(first);
      problems.push(loc.problem(path, `duplicate service name "${name}"${what}: already used at ${loc.file}:${at.line}:${at.col} (${formatPath(first)})`));
      return false;
    }
    taken.set(name, path);
    return true;
  };

  plan.levels.forEach((level, i) => {
    const levelName = level.name ?? `level${i + 1}`;
    if (levelAt.has(levelName)) problems.push(loc.problem(['levels', i, 'name'], `duplicate level name "${levelName}"`));
    else levelAt.set(levelName, i);
    index.levels.push(levelName);
    const out: Expanded[] = [];
    level.services.forEach((file, j) => {
      const path: PropertyKey[] = ['levels', i, 'services', j];
      if (file.count === undefined) {
        const copy = expandCopy(file, path, undefined, loc, problems);
        if (claim(file.name, [...path, 'name'], '')) out.push({ name: file.name, base: file.name, levelIndex: i, level: levelName, file: copy, path });
        return;
      }
      // The base name stays reserved: `${web.address}` means all copies of `web`.
      claim(file.name, [...path, 'name'], '');
      const copies: Expanded[] = [];
      for (let k = 0; k < file.count; k++) {
        const name = `${file.name}-${k}`;
        const copy = expandCopy(file, path, k, loc, problems);
        if (claim(name, [...path, 'count'], ` (made by count: ${file.count})`)) copies.push({ name, base: file.name, index: k, levelIndex: i, level: levelName, file: copy, path });
      }
      index.byBase.set(file.name, copies);
      out.push(...copies);
    });
    expandedLevels.push(out);
    for (const e of out) index.byName.set(e.name, e);
  });

  return expandedLevels.map((services, i) => {
    const built = services.map((e) => buildService(e, index, expandedLevels, levelAt, loc, options, problems));
    // Offers are recorded after the whole level, so nothing of this level is visible to it.
    built.forEach((s) => index.offers.set(s.name, offersOf(s)));
    return { name: index.levels[i]!, index: i, services: built };
  });
}

/** A copy of a service with `${count.index}` filled (an error outside a counted service). */
function expandCopy(file: ServiceFile, path: PropertyKey[], k: number | undefined, loc: Locator, problems: PlanProblem[]): ServiceFile {
  return mapStrings(file, path, (s, at) =>
    substituteAt(s, at, (ref) => {
      if (ref[0] !== 'count') return 'keep';
      if (ref.length !== 2 || ref[1] !== 'index') return { error: `${refText(ref)}: the only count attribute is \${count.index}` };
      // Reported once, on the copy without an index.
      if (k === undefined) return { error: `${refText(ref)}: only a service with count has an index` };
      return { value: k };
    }, problems, loc),
  ) as ServiceFile;
}

/** The references a service (or, with levelIndex Infinity, a system object) may make. */
function serviceDecider(
  levelIndex: number,
  index: Index,
  levelAt: Map<string, number>,
  expandedLevels: Expanded[][],
  options: LoadOptions,
  inDtrs: boolean,
): (ref: readonly string[]) => Decision {
  return (ref) => {
    if ((RESERVED_NAMES as readonly string[]).includes(ref[0]!)) return ref[0] === 'run' ? runDecision(ref, options) : 'keep';
    if (ref.length === 1) {
      if (inDtrs) return 'keep';
      return { error: `${refText(ref)} is not a plan reference: use \${globals.NAME}, \${vars.NAME}, \${env.NAME}, \${SERVICE.ATTRIBUTE} or \${LEVEL.SERVICE.ATTRIBUTE}` };
    }
    if (ref.length > 3) return { error: `${refText(ref)} is not a reference: at most LEVEL.SERVICE.ATTRIBUTE` };
    let targets: Expanded[] | undefined;
    const [serviceName, attr] = ref.length === 3 ? [ref[1]!, ref[2]!] : [ref[0]!, ref[1]!];
    if (ref.length === 3) {
      const lvl = levelAt.get(ref[0]!);
      if (lvl === undefined) return { error: `${refText(ref)}: unknown level "${ref[0]}"${list(' (levels: ', [...levelAt.keys()], ')')}` };
      const inLevel = expandedLevels[lvl]!;
      targets = inLevel.some((e) => e.name === serviceName) ? inLevel.filter((e) => e.name === serviceName) : inLevel.filter((e) => e.index !== undefined && e.base === serviceName);
      if (targets.length === 0) return { error: `${refText(ref)}: level ${ref[0]} has no service "${serviceName}"${list(' (it has: ', [...new Set(inLevel.map((e) => e.name))], ')')}` };
    } else {
      const one = index.byName.get(serviceName);
      targets = one ? [one] : index.byBase.get(serviceName);
      if (!targets || targets.length === 0) {
        const earlier = [...index.byName.values()].filter((e) => e.levelIndex < levelIndex).map((e) => e.name);
        return { error: `${refText(ref)}: unknown service "${serviceName}"${list(' (services of earlier levels: ', earlier, ')')}` };
      }
    }
    const target = targets[0]!;
    if (target.levelIndex >= levelIndex) {
      const same = target.levelIndex === levelIndex;
      return {
        error: `${refText(ref)}: service ${serviceName} is in ${same ? 'the same level' : 'a later level'} (${target.level}); a service may use attributes of earlier levels only`,
      };
    }
    const kind = kindOf(target.file);
    const attrs: readonly string[] = SERVICE_ATTRIBUTES[kind];
    if (!attrs.includes(attr)) return { error: `${refText(ref)}: a ${kind} service has no attribute "${attr}" (it has ${attrs.join(', ')})` };
    const values = targets.map((t) => index.offers.get(t.name)?.[attr] ?? refText([t.level, t.name, attr]));
    return { value: values.join(',') };
  };
}

function kindOf(file: ServiceFile): PlanService['kind'] {
  return file.node ? 'node' : file.address !== undefined ? 'remote' : 'command';
}

function buildService(
  e: Expanded,
  index: Index,
  expandedLevels: Expanded[][],
  levelAt: Map<string, number>,
  loc: Locator,
  options: LoadOptions,
  problems: PlanProblem[],
): PlanService {
  const decide = serviceDecider(e.levelIndex, index, levelAt, expandedLevels, options, false);
  const f = mapStrings(e.file, e.path, (s, at) => substituteAt(s, at, decide, problems, loc)) as ServiceFile;
  const common = {
    name: e.name,
    base: e.base,
    ...(e.index !== undefined ? { index: e.index } : {}),
    level: e.level,
    levelIndex: e.levelIndex,
    ...(f.ready !== undefined ? { ready: f.ready } : {}),
    timeout: f.timeout,
    retries: f.retries,
    continue_on_error: f.continue_on_error,
    source: loc.source(e.path),
  };
  const checkAddress = (value: string, at: PropertyKey[], listen: boolean) => {
    if (hasRefs(value)) return;
    for (const a of value.split(',')) {
      const bad = addressError(a.trim(), listen);
      if (bad) problems.push(loc.problem(at, bad));
    }
  };
  if (f.node) {
    const n = f.node;
    const dataDir = n.data_dir ?? substitute(`\${run.dir}/${e.name}`, (ref) => runDecision(ref, options)).value;
    const join =
      n.join ??
      expandedLevels
        .slice(0, e.levelIndex)
        .flat()
        .filter((t) => kindOf(t.file) !== 'command')
        .map((t) => index.offers.get(t.name)?.address ?? refText([t.level, t.name, 'address']));
    checkAddress(n.listen, [...e.path, 'node', 'listen'], true);
    if (n.listen.includes(',')) problems.push(loc.problem([...e.path, 'node', 'listen'], `"${n.listen}" is not HOST:PORT`));
    join.forEach((a, i) => checkAddress(a, [...e.path, 'node', 'join', ...(n.join ? [i] : [])], false));
    return {
      ...common,
      kind: 'node',
      role: n.role,
      listen: n.listen,
      data_dir: String(dataDir),
      join,
      ...(n.replicas !== undefined ? { replicas: n.replicas } : {}),
      ...(n.slots !== undefined ? { slots: n.slots } : {}),
      ...(n.engine_type !== undefined ? { engine_type: n.engine_type } : {}),
      args: n.args,
      env: f.env ?? {},
    };
  }
  if (f.address !== undefined) {
    checkAddress(f.address, [...e.path, 'address'], false);
    return { ...common, kind: 'remote', address: f.address };
  }
  return {
    ...common,
    kind: 'command',
    run: f.run!,
    ...(f.terminate !== undefined ? { terminate: f.terminate } : {}),
    ...(f.cwd !== undefined ? { cwd: f.cwd } : {}),
    env: f.env ?? {},
  };
}

/** What later levels may use of `s` before boot; the rest stays a canonical reference. */
function offersOf(s: PlanService): Offers {
  switch (s.kind) {
    case 'node': {
      const address = staticAddress(s.listen);
      return { name: s.name, role: s.role, listen: s.listen, data_dir: s.data_dir, ...(address ? { address } : {}) };
    }
    case 'remote':
      return { name: s.name, ...(hasRefs(s.address) ? {} : { address: s.address }) };
    case 'command':
      return { name: s.name };
  }
}

// --- system objects ----------------------------------------------------------------------------

interface SectionCheck {
  /** The message the actor's schema checks, for the object `name`. */
  message(name: string, body: Record<string, unknown>): unknown;
  schema: z.ZodType;
  /** The message's path of a field -> the object's (undefined: the name itself). */
  fromMessage(path: readonly PropertyKey[]): readonly PropertyKey[] | undefined;
  /** What the plan keeps from the parsed message. */
  body(parsed: unknown): unknown;
  /** Fields the plan's object may not have (the message's own). */
  reserved: readonly string[];
}

const omit = (keys: readonly string[]) => (parsed: unknown) => Object.fromEntries(Object.entries(parsed as object).filter(([k]) => !keys.includes(k)));
const asIs = (path: readonly PropertyKey[]) => path;

const SECTIONS: Record<SystemSection, SectionCheck> = {
  sites: { message: (_n, b) => b, schema: SiteDefinitionSchema, fromMessage: asIs, body: (p) => p, reserved: [] },
  deployable_types: { message: (_n, b) => b, schema: DtDefinitionSchema, fromMessage: asIs, body: (p) => p, reserved: [] },
  domains: {
    message: (name, b) => ({ ...b, op: 'domain.add', id: name }),
    schema: RegistryMessageSchema,
    fromMessage: (p) => (p[0] === 'id' ? undefined : p),
    body: omit(['op', 'id']),
    reserved: ['op', 'id'],
  },
  process_definitions: {
    message: (name, b) => ({ ...b, id: name }),
    schema: ProcessDefinitionSchema,
    fromMessage: (p) => (p[0] === 'id' ? undefined : p),
    body: omit(['id']),
    reserved: ['id'],
  },
  processes: {
    message: (name, b) => ({ ...b, upid: name }),
    schema: ScheduleSchema,
    fromMessage: (p) => (p[0] === 'upid' ? undefined : p),
    body: omit(['upid']),
    reserved: ['upid'],
  },
  streams: {
    message: (_n, b) => ({ configure: { retention: b.retention ?? {} }, ...Object.fromEntries(Object.entries(b).filter(([k]) => k !== 'retention').map(([k]) => [k, true])) }),
    schema: StreamMessageSchema,
    fromMessage: (p) => (p[0] === 'configure' ? p.slice(1) : p),
    body: (p) => ({ ...(Object.keys((p as { configure: { retention: object } }).configure.retention).length > 0 ? { retention: (p as { configure: { retention: object } }).configure.retention } : {}) }),
    reserved: [],
  },
};

/** A name check for every section: the one rule of resource names, or the actor's id rule. */
const KEY_SCHEMAS: Record<SystemSection, z.ZodType> = {
  sites: ResourceName,
  deployable_types: ResourceName,
  domains: ResourceName,
  process_definitions: ProcessDefinitionSchema.shape.id,
  processes: ScheduleSchema.shape.upid,
  streams: ResourceName,
};

function buildSystem(plan: PlanFile, levels: PlanLevel[], loc: Locator, options: LoadOptions, problems: PlanProblem[]): { system: PlanSystem; objectSources: Record<string, SourceLocation> } {
  // Every level is up when objects are applied: each may use any service.
  const index: Index = { byName: new Map(), byBase: new Map(), levels: levels.map((l) => l.name), offers: new Map() };
  const expandedLevels: Expanded[][] = levels.map((l) =>
    l.services.map((s) => {
      const file = (s.kind === 'node' ? { node: {} } : s.kind === 'remote' ? { address: s.address } : { run: s.run }) as ServiceFile;
      const e: Expanded = { name: s.name, base: s.base, ...(s.index !== undefined ? { index: s.index } : {}), levelIndex: l.index, level: l.name, file, path: [] };
      index.byName.set(s.name, e);
      if (s.index !== undefined) index.byBase.set(s.base, [...(index.byBase.get(s.base) ?? []), e]);
      index.offers.set(s.name, offersOf(s));
      return e;
    }),
  );
  const levelAt = new Map(levels.map((l) => [l.name, l.index]));
  const system = {} as Record<SystemSection, Record<string, unknown>>;
  const objectSources: Record<string, SourceLocation> = {};
  for (const section of SYSTEM_SECTIONS) {
    system[section] = {};
    const objects = plan[section] ?? {};
    const check = SECTIONS[section];
    const decide = serviceDecider(Number.POSITIVE_INFINITY, index, levelAt, expandedLevels, options, section === 'deployable_types');
    for (const [name, value] of Object.entries(objects)) {
      const path = [section, name];
      objectSources[formatPath(path)] = loc.source(path);
      const key = KEY_SCHEMAS[section].safeParse(name);
      if (!key.success) {
        problems.push(loc.problem(path, `bad name: ${zodReason(key.error)}`));
        continue;
      }
      const body = value ?? {};
      if (typeof body !== 'object' || Array.isArray(body)) {
        problems.push(loc.problem(path, 'must be a map of fields'));
        continue;
      }
      const clash = check.reserved.filter((k) => Object.hasOwn(body, k));
      if (clash.length > 0) {
        for (const k of clash) problems.push(loc.problem([...path, k], `unknown field: the ${k} is the key (${name})`));
        continue;
      }
      const before = problems.length;
      const filled = mapStrings(body, path, (s, at) => substituteAt(s, at, decide, problems, loc)) as Record<string, unknown>;
      if (problems.length > before) continue;
      // What is known only after boot stays a reference; the actor's schema sees a neutral token
      // (a reference is not a registry template), and the reference is put back afterwards.
      const tokens = new Map<string, string>();
      const masked = mapStrings(filled, [], (s) =>
        s.replace(/(?<!\$)\$\{[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\}/g, (ref) => {
          const token = `plref${tokens.size}x`;
          tokens.set(token, ref);
          return token;
        }),
      ) as Record<string, unknown>;
      const message = check.message(name, masked);
      const r = check.schema.safeParse(message);
      if (!r.success) {
        // Located against the plan, not the message the actor's schema saw.
        problems.push(...r.error.issues.flatMap((issue) => {
          const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
          return keys.map((p) => {
            const inPlan = check.fromMessage(p);
            const full = inPlan === undefined ? path : [...path, ...inPlan];
            const reason =
              issue.code === 'unrecognized_keys'
                ? 'unknown field'
                : isMissing(issue, message)
                  ? 'required field is missing'
                  : zodReason(new z.ZodError([{ ...issue, path: [] }]));
            return loc.problem(full, unmask(reason, tokens));
          });
        }));
        continue;
      }
      if (section === 'domains' && tokens.size === 0) {
        const before = problems.length;
        checkEngineConf(r.data as { config?: PartialConfig }, path, loc, problems);
        if (problems.length > before) continue;
      }
      system[section][name] = mapStrings(check.body(r.data), [], (s) => unmask(s, tokens));
    }
  }
  return { system: system as unknown as PlanSystem, objectSources };
}

/**
 * A built-in engine's conf checked by the engine itself, as the domain would at creation. An engine
 * the plan's nodes load with --engines is not known here: its conf is checked when the domain is added.
 */
function checkEngineConf(domain: { config?: PartialConfig }, path: PropertyKey[], loc: Locator, problems: PlanProblem[]): void {
  // Looked up at call time, not at import: the engines' modules import each other (see engine.ts).
  const engine = builtinEngines().find((e) => e.name === domain.config?.engine);
  if (!engine || domain.config?.engine_conf === undefined) return;
  const r = engine.validateConf(domain.config.engine_conf);
  if (!r.ok) for (const e of r.errors) problems.push(loc.problem([...path, 'config', 'engine_conf'], e));
}

function unmask(s: string, tokens: Map<string, string>): string {
  return tokens.size === 0 ? s : s.replace(/plref\d+x/g, (t) => tokens.get(t) ?? t);
}

