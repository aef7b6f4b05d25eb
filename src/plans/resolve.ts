/**
 * `${...}` references in plan strings: parsing, substitution, and the last step the launcher takes
 * once earlier levels are up (resolveService, resolveSystem). Everything here is pure.
 *
 * Reference grammar (see ./plan.ts): `${a.b}` or `${a.b.c}`, each part letters, digits, "_" or "-";
 * `$${` is a literal `${` and survives every pass until the final one (so a value inserted into a
 * template is never re-read as a reference); any other `$` is literal.
 */
import type { Plan, PlanService, PlanSystem, PlanProblem, SystemSection } from './plan.js';
import { PlanError, RUN_ATTRIBUTES, SYSTEM_SECTIONS } from './plan.js';
import { formatPath } from '../actors/zod-reason.js';
import { scanTemplate, type ScanRules } from '../template-scan.js';

export type Scalar = string | number | boolean;

type Part = { text: string } | { ref: string[]; raw: string };

const PART = /^[A-Za-z0-9_-]+$/;

const RULES: ScanRules = {
  check: (inner) => (inner.split('.').every((p) => PART.test(p)) ? undefined : `"\${${inner}}" is not a reference (parts of letters, digits, "_" or "-", joined by ".")`),
  // Kept: a value put into a template must never be read as a reference by a later pass.
  escape: '$${',
};

/** Splits a template into text (escapes kept verbatim) and references; a reason when malformed. */
export function parseTemplate(template: string): Part[] | string {
  const parts = scanTemplate(template, RULES);
  return typeof parts === 'string' ? parts : parts.map((p) => ('text' in p ? p : { ref: p.inner.split('.'), raw: p.raw }));
}

/** What to do with one reference: put a value in, leave it for a later pass, or refuse it. */
export type Decision = { value: Scalar } | 'keep' | { error: string };

/**
 * Substitutes the references of `template` as `decide` says. A template that is exactly one
 * reference takes the value's own type (a number stays a number); otherwise values are joined as text.
 */
export function substitute(template: string, decide: (ref: readonly string[]) => Decision): { value: Scalar; errors: string[] } {
  const parts = parseTemplate(template);
  if (typeof parts === 'string') return { value: template, errors: [parts] };
  const errors: string[] = [];
  const out: Scalar[] = parts.map((p) => {
    if ('text' in p) return p.text;
    const d = decide(p.ref);
    if (d === 'keep') return p.raw;
    if ('error' in d) {
      errors.push(d.error);
      return p.raw;
    }
    return d.value;
  });
  if (out.length === 1 && parts[0] && 'ref' in parts[0]) return { value: out[0]!, errors };
  return { value: out.map(String).join(''), errors };
}

/** The references left in `template` (none for a malformed one). */
export function templateRefs(template: string): string[][] {
  const parts = parseTemplate(template);
  return typeof parts === 'string' ? [] : parts.flatMap((p) => ('ref' in p ? [p.ref] : []));
}

export function hasRefs(template: string): boolean {
  return templateRefs(template).length > 0;
}

/** `$${` -> `${`: the last pass over a string, when nothing in it is a reference any more. */
export function unescapeTemplate(template: string): string {
  return template.replaceAll('$${', '${');
}

export const refText = (ref: readonly string[]): string => '${' + ref.join('.') + '}';

/** A copy of `value` with every string (not keys) replaced by `fn(string, path)`. */
export function mapStrings(value: unknown, path: readonly PropertyKey[], fn: (s: string, path: readonly PropertyKey[]) => unknown): unknown {
  if (typeof value === 'string') return fn(value, path);
  if (Array.isArray(value)) return value.map((v, i) => mapStrings(v, [...path, i], fn));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, [...path, k], fn)]));
  }
  return value;
}

// --- addresses ---------------------------------------------------------------------------------

const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const WILDCARD_HOSTS = new Set(['0.0.0.0', '[::]', '::']);

/** Why `address` is not HOST:PORT (port 0 only when `listen`), or undefined. */
export function addressError(address: string, listen: boolean): string | undefined {
  const m = ADDRESS.exec(address);
  if (!m) return `"${address}" is not HOST:PORT`;
  const port = Number(m[2]);
  if (port > 65535) return `"${address}": port must be at most 65535`;
  if (port === 0 && !listen) return `"${address}": port 0 is only for listen addresses`;
  return undefined;
}

/** The address others reach a node at, when its listen address says it before the node starts. */
export function staticAddress(listen: string): string | undefined {
  if (hasRefs(listen) || addressError(listen, true)) return undefined;
  const m = ADDRESS.exec(listen)!;
  if (Number(m[2]) === 0 || WILDCARD_HOSTS.has(m[1]!)) return undefined;
  return listen;
}

// --- after boot --------------------------------------------------------------------------------

/** What the launcher learned: the run, and each booted service's attributes (by expanded name). */
export interface BootAttributes {
  run?: { dir: string; name: string };
  services: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

function bootDecider(known: BootAttributes, problems: string[]): (ref: readonly string[]) => Decision {
  return (ref) => {
    if (ref.length === 2 && ref[0] === 'run') {
      const attr = ref[1] as (typeof RUN_ATTRIBUTES)[number];
      if (!known.run) return { error: `${refText(ref)}: the run's ${attr} was not given` };
      if (!RUN_ATTRIBUTES.includes(attr)) return { error: `${refText(ref)}: unknown run attribute` };
      return { value: known.run[attr] };
    }
    if (ref.length === 1) return 'keep';
    const [service, attr] = ref.length === 3 ? [ref[1]!, ref[2]!] : [ref[0]!, ref[1]!];
    const value = known.services[service]?.[attr];
    if (value === undefined) {
      problems.push(`${refText(ref)}: service ${service} has no ${attr} yet (has it booted?)`);
      return 'keep';
    }
    return { value };
  };
}

interface Found {
  path: string;
  reason: string;
}

function fill<T>(value: T, known: BootAttributes, escapes: 'unescape' | 'keep-dtrs', problems: Found[], root: readonly PropertyKey[]): T {
  return mapStrings(value, root, (s, path) => {
    const errors: string[] = [];
    const r = substitute(s, bootDecider(known, errors));
    for (const reason of [...r.errors, ...errors]) problems.push({ path: formatPath(path), reason });
    return typeof r.value === 'string' && escapes === 'unescape' ? unescapeTemplate(r.value) : r.value;
  }) as T;
}

/**
 * The service `serviceName` of level `levelIndex` with every reference filled from what earlier
 * levels reported, ready to start: no `${` is left but the literal ones `$${` stood for. Join
 * entries are split at commas (a counted service's list) and every address is checked.
 * Throws PlanError naming the service's place in the file.
 */
export function resolveService(plan: Plan, levelIndex: number, serviceName: string, known: BootAttributes): PlanService {
  const service = plan.levels[levelIndex]?.services.find((s) => s.name === serviceName);
  if (!service) throw new PlanError([{ file: plan.file, line: 1, col: 1, path: '', reason: `no service ${serviceName} in level ${levelIndex}` }]);
  const problems: Found[] = [];
  const { source, ...rest } = service;
  const filled = { ...fill(rest, known, 'unescape', problems, []), source } as PlanService;
  if (filled.kind === 'node') {
    filled.join = filled.join.flatMap((j) => j.split(',').map((a) => a.trim()).filter((a) => a !== ''));
    const listenBad = addressError(filled.listen, true);
    if (listenBad) problems.push({ path: 'node.listen', reason: listenBad });
    filled.join.forEach((a, i) => {
      const bad = addressError(a, false);
      if (bad) problems.push({ path: `node.join[${i}]`, reason: bad });
    });
  } else if (filled.kind === 'remote') {
    const bad = addressError(filled.address, false);
    if (bad) problems.push({ path: 'address', reason: bad });
  }
  if (problems.length > 0) {
    throw new PlanError(problems.map((p): PlanProblem => ({ file: source.file, line: source.line, col: source.col, path: `${source.path}${p.path ? `.${p.path}` : ''}`, reason: p.reason })));
  }
  return filled;
}

/**
 * The system objects with every reference filled, to apply once every level is up. Strings of
 * deployable types keep the registry's own `${var}` templates and `$${` escapes.
 */
export function resolveSystem(plan: Plan, known: BootAttributes): PlanSystem {
  const problems: Found[] = [];
  const out = {} as Record<SystemSection, unknown>;
  for (const section of SYSTEM_SECTIONS) {
    out[section] = fill(plan.system[section], known, section === 'deployable_types' ? 'keep-dtrs' : 'unescape', problems, [section]);
  }
  if (problems.length > 0) {
    throw new PlanError(
      problems.map((p): PlanProblem => {
        const key = Object.keys(plan.objectSources).find((k) => p.path === k || p.path.startsWith(`${k}.`) || p.path.startsWith(`${k}[`));
        const at = key === undefined ? undefined : plan.objectSources[key];
        return { file: at?.file ?? plan.file, line: at?.line ?? 1, col: at?.col ?? 1, path: p.path, reason: p.reason };
      }),
    );
  }
  return out as unknown as PlanSystem;
}
