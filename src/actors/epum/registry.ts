/**
 * The domain registry's state and its pure logic: the index of domains (what `domain list` shows;
 * each domain's own actor holds the domain) and the domain definitions, the named config templates
 * that `domain.add` fills in. The actor shell (./epum.ts) asks the domains; everything here is a
 * function of the state and the message, and a refusal throws the CeiError the caller should see.
 *
 * The index follows the domains: a domain tells the registry when it is created and when its
 * removal is done, through its outbox, so a crash between the registry's turn and the domain's
 * cannot leave a domain unlisted or a removed one listed. The last generations removed are
 * remembered, so a late `domain.registered` cannot list a domain that is gone.
 */
import { CeiError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { zodReason } from '../zod-reason.js';
import { mergeEngineConf } from './engine.js';
import {
  DomainConfigSchema,
  type DefinitionRecord,
  type Definition,
  type DomainConfig,
  type DomainSummary,
  type PartialConfig,
  type RegistryMessageOf,
} from './protocol.js';

export interface RegistryState {
  domains: Record<string, DomainSummary>;
  definitions: Record<string, { version: number; definition: Definition }>;
  /** `<id>/<generation>` of the last domains removed (at most GONE_KEPT). */
  gone: string[];
}

const GONE_KEPT = 256;

export function emptyRegistryState(): RegistryState {
  return { domains: {}, definitions: {}, gone: [] };
}

function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

// --- domains ---------------------------------------------------------------------------------------

export function domainEntry(state: RegistryState, id: string): DomainSummary {
  const entry = own(state.domains, id);
  if (!entry) throw new NotFoundError(`no domain "${id}"`);
  return entry;
}

/**
 * The full config of a new domain: the definition's template (if named) with the request's config
 * over it (engine_conf top-level keys replace the template's whole, health keys likewise), checked
 * with the config schema (the engine conf is the engine's to check, in the domain's turn).
 */
export function resolveConfig(state: RegistryState, msg: RegistryMessageOf<'domain.add'>): DomainConfig {
  let base: PartialConfig = {};
  if (msg.definition !== undefined) {
    const def = own(state.definitions, msg.definition);
    if (!def) throw new NotFoundError(`no domain definition "${msg.definition}"`);
    base = def.definition.config;
  }
  const over = msg.config ?? {};
  if (msg.definition !== undefined && over.engine !== undefined && over.engine !== base.engine) {
    throw new InvalidArgumentError(`config.engine: definition "${msg.definition}" uses engine "${base.engine}"; a domain made from it cannot use "${over.engine}"`);
  }
  const merged: Record<string, unknown> = {
    engine: over.engine ?? base.engine,
    engine_conf: mergeEngineConf(base.engine_conf ?? {}, over.engine_conf ?? {}),
    health: { ...base.health, ...over.health },
  };
  const tick = over.tick_seconds ?? base.tick_seconds;
  if (tick !== undefined) merged.tick_seconds = tick;
  const r = DomainConfigSchema.safeParse(merged);
  if (!r.success) throw new InvalidArgumentError(zodReason(r.error, 'config'));
  return r.data;
}

/** Refuses an add while a domain of that id is being removed. */
export function checkAddable(state: RegistryState, id: string): void {
  const entry = own(state.domains, id);
  if (entry?.status === 'removing') throw new CeiError('ALREADY_EXISTS', `domain "${id}" is being removed; add it again once it is gone`);
}

export function listDomain(state: RegistryState, summary: DomainSummary): RegistryState {
  const old = own(state.domains, summary.id);
  if (old && canonical(old) === canonical(summary)) return state;
  if (state.gone.includes(`${summary.id}/${summary.generation}`)) return state;
  return { ...state, domains: { ...state.domains, [summary.id]: summary } };
}

export function markRemoving(state: RegistryState, id: string): RegistryState {
  const old = own(state.domains, id);
  if (!old || old.status === 'removing') return state;
  return { ...state, domains: { ...state.domains, [id]: { ...old, status: 'removing' } } };
}

/** A domain's removal is done: unlist it (if it is that generation) and remember the generation. */
export function unlistDomain(state: RegistryState, id: string, generation: string): RegistryState {
  const key = `${id}/${generation}`;
  const gone = state.gone.includes(key) ? state.gone : [...state.gone, key].slice(-GONE_KEPT);
  const entry = own(state.domains, id);
  if (!entry || entry.generation !== generation) return gone === state.gone ? state : { ...state, gone };
  const domains = { ...state.domains };
  delete domains[id];
  return { ...state, domains, gone };
}

export function listDomains(state: RegistryState): DomainSummary[] {
  return Object.keys(state.domains)
    .sort()
    .map((id) => state.domains[id]!);
}

// --- definitions -----------------------------------------------------------------------------------

function definitionRecord(state: RegistryState, name: string): DefinitionRecord {
  const def = own(state.definitions, name);
  if (!def) throw new NotFoundError(`no domain definition "${name}"`);
  return { name, version: def.version, definition: def.definition };
}

export function applyDefinition(
  state: RegistryState,
  msg: RegistryMessageOf<'def.add' | 'def.update' | 'def.describe' | 'def.remove' | 'def.list'>,
): { state: RegistryState; reply: unknown } {
  switch (msg.op) {
    case 'def.add': {
      const old = own(state.definitions, msg.name);
      if (old && canonical(old.definition) !== canonical(msg.definition)) {
        throw new CeiError('ALREADY_EXISTS', `domain definition "${msg.name}" exists with a different content (version ${old.version}); update it to change it`);
      }
      if (old) return { state, reply: { created: false, record: definitionRecord(state, msg.name) } };
      const next = { ...state, definitions: { ...state.definitions, [msg.name]: { version: 1, definition: msg.definition } } };
      return { state: next, reply: { created: true, record: definitionRecord(next, msg.name) } };
    }
    case 'def.update': {
      const old = definitionRecord(state, msg.name);
      if (canonical(old.definition) === canonical(msg.definition)) return { state, reply: old };
      const next = { ...state, definitions: { ...state.definitions, [msg.name]: { version: old.version + 1, definition: msg.definition } } };
      return { state: next, reply: definitionRecord(next, msg.name) };
    }
    case 'def.describe':
      return { state, reply: definitionRecord(state, msg.name) };
    case 'def.remove': {
      definitionRecord(state, msg.name);
      const definitions = { ...state.definitions };
      delete definitions[msg.name];
      // Domains made from it keep their config: a definition is a template, copied at add.
      return { state: { ...state, definitions }, reply: { removed: msg.name } };
    }
    case 'def.list':
      return {
        state,
        reply: {
          definitions: Object.keys(state.definitions)
            .sort()
            .map((n) => definitionRecord(state, n)),
        },
      };
  }
}
