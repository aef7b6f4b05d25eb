/**
 * The registry's logic as pure functions of its state: each message gives a new state and a reply,
 * or throws the CeiError the caller should see (and then nothing changed). The actor in ./dtrs.ts
 * is the shell that stores the state and sends the reply.
 *
 * Invariants kept by every change:
 * - every site a deployable type maps is registered, and the type's parameters there are ones the
 *   site's driver takes; so a site a type uses can be neither removed nor changed to a type whose
 *   driver does not take those parameters (FAILED_PRECONDITION naming the types), and a lookup
 *   can only fail for a missing variable;
 * - credentials belong to a registered site: removing the site removes them.
 *
 * Adding what exists is idempotent when the definition is identical (created = false) and
 * ALREADY_EXISTS otherwise; updating or removing what does not exist is NOT_FOUND. Definitions are
 * stored as given (defaults are applied at lookup), so "identical" means what the user wrote.
 */
import { CeiError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type {
  AddReply,
  Credentials,
  CredentialsRecord,
  DtDefinition,
  DtRecord,
  DtSiteParams,
  DtrsMessage,
  LaunchSpec,
  LocalLaunchParams,
  SiteDefinition,
  SiteRecord,
  SiteType,
} from './dtrs.js';
import { fillTemplate } from './dtrs-template.js';

interface Versioned<T> {
  version: number;
  value: T;
}

export interface DtrsState {
  dts: Record<string, Versioned<DtDefinition>>;
  sites: Record<string, Versioned<SiteDefinition>>;
  credentials: Record<string, Versioned<Credentials>>;
}

export function emptyDtrsState(): DtrsState {
  return { dts: {}, sites: {}, credentials: {} };
}

/** The launch parameters each site type's driver takes, with their defaults. */
export const SITE_PARAMS = {
  local: { args: [] as string[], env: {} as Record<string, string>, slots: 1 },
  sim: { slots: 1, boot_latency_ms: 0, failure_rate: 0 },
} satisfies Record<SiteType, Partial<Record<keyof DtSiteParams, unknown>>>;

export interface ApplyOptions {
  /** Whether lookup may return credentials in full (only to actors, never to the public API). */
  revealCredentials: boolean;
}

/** A secret as listings show it: never whole; the last 4 characters only of a long one, to tell keys apart. */
export function maskSecret(value: string): string {
  return value.length >= 16 ? `****${value.slice(-4)}` : '****';
}

export function maskCredentials(credentials: Credentials): Credentials {
  return Object.fromEntries(Object.entries(credentials).map(([k, v]) => [k, maskSecret(v)]));
}

/** Own entries only: names such as "constructor" must not find Object.prototype's members. */
function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function without<T>(map: Record<string, T>, key: string): Record<string, T> {
  const copy = { ...map };
  delete copy[key];
  return copy;
}

/** JSON with sorted keys: equal for equal definitions whatever order their fields came in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function alreadyExists(what: string, version: number): CeiError {
  return new CeiError('ALREADY_EXISTS', `${what} exists with a different definition (version ${version}); update it to change it`);
}

/** The keys of `params` that a site of `type` does not take. */
function unsuitableParams(params: DtSiteParams, type: SiteType): string[] {
  return Object.keys(params).filter((k) => !Object.hasOwn(SITE_PARAMS[type], k));
}

/** Refuses a type definition that maps an unregistered site or gives a site parameters its driver does not take. */
function checkDtSites(state: DtrsState, name: string, def: DtDefinition): void {
  for (const [site, params] of Object.entries(def.sites)) {
    const s = own(state.sites, site);
    if (!s) throw new NotFoundError(`deployable type "${name}" maps site "${site}", which is not registered`);
    const type = s.value.type;
    const wrong = unsuitableParams(params, type);
    if (wrong.length > 0) {
      throw new InvalidArgumentError(
        `definition.sites.${site}: ${wrong.map((k) => `"${k}"`).join(', ')} ${wrong.length > 1 ? 'are not settings' : 'is not a setting'} of a ${type} site (it takes ${Object.keys(SITE_PARAMS[type]).join(', ')})`,
      );
    }
  }
}

function usersOf(state: DtrsState, site: string): string[] {
  return Object.keys(state.dts)
    .filter((dt) => Object.hasOwn(state.dts[dt]!.value.sites, site))
    .sort();
}

function dtRecord(state: DtrsState, name: string): DtRecord {
  const dt = own(state.dts, name);
  if (!dt) throw new NotFoundError(`no deployable type "${name}"`);
  return { name, version: dt.version, definition: dt.value };
}

function siteRecord(state: DtrsState, name: string): SiteRecord {
  const site = own(state.sites, name);
  if (!site) throw new NotFoundError(`no site "${name}"`);
  return { name, version: site.version, definition: site.value, used_by: usersOf(state, name), has_credentials: Object.hasOwn(state.credentials, name) };
}

function credentialsRecord(state: DtrsState, site: string): CredentialsRecord {
  const c = own(state.credentials, site);
  if (!c) throw new NotFoundError(`no credentials for site "${site}"`);
  return { site, version: c.version, credentials: maskCredentials(c.value) };
}

/** Sets `key` to `value`: version 1 when new, bumped when the value changed, kept when it did not. */
function put<T>(map: Record<string, Versioned<T>>, key: string, value: T): Record<string, Versioned<T>> {
  const old = own(map, key);
  if (old && canonical(old.value) === canonical(value)) return map;
  return { ...map, [key]: { version: old ? old.version + 1 : 1, value } };
}

function sortedNames(map: Record<string, unknown>): string[] {
  return Object.keys(map).sort();
}

/** Fills the templates of a local launch; every missing variable is named in one error. */
function resolveLocal(dt: string, site: string, params: DtSiteParams, vars: Record<string, string>): LocalLaunchParams {
  const missing = new Map<string, string[]>();
  const fill = (template: string, where: string): string => {
    const r = fillTemplate(template, vars);
    if ('value' in r) return r.value;
    for (const v of r.missing) missing.set(v, [...(missing.get(v) ?? []), where]);
    return '';
  };
  const args = (params.args ?? SITE_PARAMS.local.args).map((a, i) => fill(a, `args[${i}]`));
  const env = Object.fromEntries(Object.entries(params.env ?? SITE_PARAMS.local.env).map(([k, v]) => [k, fill(v, `env.${k}`)]));
  if (missing.size > 0) {
    const list = [...missing].map(([v, where]) => `"${v}" (used in ${where.join(', ')})`).join(', ');
    throw new InvalidArgumentError(`lookup of deployable type "${dt}" at site "${site}": missing variable${missing.size > 1 ? 's' : ''} ${list}; pass ${missing.size > 1 ? 'them' : 'it'} in vars`);
  }
  return { args, env, slots: params.slots ?? SITE_PARAMS.local.slots };
}

function lookup(state: DtrsState, dtName: string, siteName: string, vars: Record<string, string>, opts: ApplyOptions): LaunchSpec {
  const dt = own(state.dts, dtName);
  if (!dt) throw new NotFoundError(`no deployable type "${dtName}"`);
  const params = own(dt.value.sites, siteName);
  if (!params) {
    throw new NotFoundError(`deployable type "${dtName}" has no launch parameters for site "${siteName}" (it maps: ${sortedNames(dt.value.sites).join(', ')})`);
  }
  // Cannot be missing while the invariants hold; checked so that a broken state says so plainly.
  const site = own(state.sites, siteName);
  if (!site) throw new NotFoundError(`no site "${siteName}"`);
  const creds = own(state.credentials, siteName);
  const base = {
    dt: dtName,
    dt_version: dt.version,
    site: siteName,
    site_version: site.version,
    ...(creds ? { credentials: opts.revealCredentials ? creds.value : maskCredentials(creds.value) } : {}),
  };
  const def = site.value;
  if (def.type === 'local') {
    return { ...base, site_type: 'local', site_settings: def.settings, params: resolveLocal(dtName, siteName, params, vars) };
  }
  return {
    ...base,
    site_type: 'sim',
    site_settings: def.settings,
    params: {
      slots: params.slots ?? SITE_PARAMS.sim.slots,
      boot_latency_ms: params.boot_latency_ms ?? SITE_PARAMS.sim.boot_latency_ms,
      failure_rate: params.failure_rate ?? SITE_PARAMS.sim.failure_rate,
    },
  };
}

/** Applies one (already validated) message: the new state and the reply, or a thrown CeiError. */
export function applyDtrs(state: DtrsState, msg: DtrsMessage, opts: ApplyOptions): { state: DtrsState; reply: unknown } {
  switch (msg.op) {
    case 'dt.add': {
      checkDtSites(state, msg.name, msg.definition);
      const old = own(state.dts, msg.name);
      if (old && canonical(old.value) !== canonical(msg.definition)) throw alreadyExists(`deployable type "${msg.name}"`, old.version);
      if (old) return { state, reply: { created: false, record: dtRecord(state, msg.name) } satisfies AddReply<DtRecord> };
      const next = { ...state, dts: put(state.dts, msg.name, msg.definition) };
      return { state: next, reply: { created: true, record: dtRecord(next, msg.name) } satisfies AddReply<DtRecord> };
    }
    case 'dt.update': {
      dtRecord(state, msg.name);
      checkDtSites(state, msg.name, msg.definition);
      const next = { ...state, dts: put(state.dts, msg.name, msg.definition) };
      return { state: next, reply: dtRecord(next, msg.name) };
    }
    case 'dt.describe':
      return { state, reply: dtRecord(state, msg.name) };
    case 'dt.remove':
      dtRecord(state, msg.name);
      return { state: { ...state, dts: without(state.dts, msg.name) }, reply: { removed: msg.name } };
    case 'dt.list':
      return { state, reply: { dts: sortedNames(state.dts).map((n) => dtRecord(state, n)) } };

    case 'site.add': {
      const old = own(state.sites, msg.name);
      if (old && canonical(old.value) !== canonical(msg.definition)) throw alreadyExists(`site "${msg.name}"`, old.version);
      if (old) return { state, reply: { created: false, record: siteRecord(state, msg.name) } satisfies AddReply<SiteRecord> };
      const next = { ...state, sites: put(state.sites, msg.name, msg.definition) };
      return { state: next, reply: { created: true, record: siteRecord(next, msg.name) } satisfies AddReply<SiteRecord> };
    }
    case 'site.update': {
      siteRecord(state, msg.name);
      const type = msg.definition.type;
      const conflicts = usersOf(state, msg.name).flatMap((dt) => {
        const wrong = unsuitableParams(state.dts[dt]!.value.sites[msg.name]!, type);
        return wrong.length > 0 ? [`${dt} (${wrong.join(', ')})`] : [];
      });
      if (conflicts.length > 0) {
        throw new FailedPreconditionError(
          `site "${msg.name}" cannot become a ${type} site: deployable types give it parameters a ${type} site does not take: ${conflicts.join('; ')}`,
        );
      }
      const next = { ...state, sites: put(state.sites, msg.name, msg.definition) };
      return { state: next, reply: siteRecord(next, msg.name) };
    }
    case 'site.describe':
      return { state, reply: siteRecord(state, msg.name) };
    case 'site.remove': {
      const { used_by } = siteRecord(state, msg.name);
      if (used_by.length > 0) {
        throw new FailedPreconditionError(`site "${msg.name}" is used by deployable types ${used_by.join(', ')}; remove them or their mapping of the site first`);
      }
      return {
        state: { ...state, sites: without(state.sites, msg.name), credentials: without(state.credentials, msg.name) },
        reply: { removed: msg.name },
      };
    }
    case 'site.list':
      return { state, reply: { sites: sortedNames(state.sites).map((n) => siteRecord(state, n)) } };

    case 'credentials.add': {
      siteRecord(state, msg.site);
      const old = own(state.credentials, msg.site);
      if (old && canonical(old.value) !== canonical(msg.credentials)) throw alreadyExists(`credentials for site "${msg.site}"`, old.version);
      if (old) return { state, reply: { created: false, record: credentialsRecord(state, msg.site) } satisfies AddReply<CredentialsRecord> };
      const next = { ...state, credentials: put(state.credentials, msg.site, msg.credentials) };
      return { state: next, reply: { created: true, record: credentialsRecord(next, msg.site) } satisfies AddReply<CredentialsRecord> };
    }
    case 'credentials.update': {
      credentialsRecord(state, msg.site);
      const next = { ...state, credentials: put(state.credentials, msg.site, msg.credentials) };
      return { state: next, reply: credentialsRecord(next, msg.site) };
    }
    case 'credentials.describe':
      return { state, reply: credentialsRecord(state, msg.site) };
    case 'credentials.remove':
      credentialsRecord(state, msg.site);
      return { state: { ...state, credentials: without(state.credentials, msg.site) }, reply: { removed: msg.site } };
    case 'credentials.list':
      return { state, reply: { credentials: sortedNames(state.credentials).map((s) => credentialsRecord(state, s)) } };

    case 'lookup':
      return { state, reply: lookup(state, msg.dt, msg.site, msg.vars, opts) };
  }
}
