/** The domain registry's pure logic: resolving a config from a definition, and an index that follows the domains. */
import { describe, expect, it } from 'vitest';
import { applyDefinition, emptyRegistryState, listDomain, resolveConfig, unlistDomain, type RegistryState } from '../../../src/actors/epum/registry.js';
import type { DomainSummary } from '../../../src/actors/epum/protocol.js';

const withDef = (): RegistryState =>
  applyDefinition(emptyRegistryState(), {
    op: 'def.add',
    name: 'tpl',
    definition: { config: { engine: 'npreserving', engine_conf: { preserve_n: 2, site: 's', retirable_nodes: ['x'] }, health: { boot_timeout: 30 }, tick_seconds: 2 } },
  }).state as RegistryState;

describe('resolveConfig', () => {
  it('fills a definition with the request\'s config: engine_conf keys whole, health keys, defaults', () => {
    const c = resolveConfig(withDef(), {
      op: 'domain.add',
      id: 'd',
      definition: 'tpl',
      config: { engine_conf: { preserve_n: 3, retirable_nodes: [] , deployable_type: 'dt' }, health: { missing_timeout: 1 } },
    });
    expect(c).toEqual({
      engine: 'npreserving',
      engine_conf: { preserve_n: 3, site: 's', retirable_nodes: [], deployable_type: 'dt' },
      health: { monitor_health: true, boot_timeout: 30, missing_timeout: 1, really_missing_timeout: 10, zombie_seconds: 10 },
      tick_seconds: 2,
    });
  });

  it('refuses an unknown definition, another engine than the definition\'s, and a bad config', () => {
    expect(() => resolveConfig(emptyRegistryState(), { op: 'domain.add', id: 'd', definition: 'nope' })).toThrow('no domain definition "nope"');
    expect(() => resolveConfig(withDef(), { op: 'domain.add', id: 'd', definition: 'tpl', config: { engine: 'sensor' } })).toThrow(
      /definition "tpl" uses engine "npreserving"/,
    );
    expect(() => resolveConfig(emptyRegistryState(), { op: 'domain.add', id: 'd', config: { engine: 'x', tick_seconds: 0 } })).toThrow(
      'config.tick_seconds: must be at least 0.01 seconds',
    );
  });
});

describe('the domain index', () => {
  const summary: DomainSummary = { id: 'd', engine: 'npreserving', status: 'active', generation: 'g1', created_at: 1 };

  it('unlists only the generation that was removed, and never lists a removed generation again', () => {
    let s = listDomain(emptyRegistryState(), summary);
    expect(Object.keys(s.domains)).toEqual(['d']);
    expect(unlistDomain(s, 'd', 'g0').domains.d).toEqual(summary);
    s = unlistDomain(s, 'd', 'g1');
    expect(s.domains).toEqual({});
    expect(listDomain(s, summary).domains).toEqual({});
    expect(listDomain(s, { ...summary, generation: 'g2' }).domains.d?.generation).toBe('g2');
  });

  it('versions definitions: identical add is no change, another content is ALREADY_EXISTS, update bumps', () => {
    const s = withDef();
    const def = s.definitions.tpl!.definition;
    expect(applyDefinition(s, { op: 'def.add', name: 'tpl', definition: def }).reply).toMatchObject({ created: false });
    expect(() => applyDefinition(s, { op: 'def.add', name: 'tpl', definition: { config: { engine: 'sensor' } } })).toThrow(/exists with a different content/);
    expect(applyDefinition(s, { op: 'def.update', name: 'tpl', definition: def }).reply).toMatchObject({ version: 1 });
    expect(applyDefinition(s, { op: 'def.update', name: 'tpl', definition: { config: { engine: 'sensor' } } }).reply).toMatchObject({ version: 2 });
    expect(() => applyDefinition(s, { op: 'def.remove', name: 'nope' })).toThrow('no domain definition "nope"');
  });
});
