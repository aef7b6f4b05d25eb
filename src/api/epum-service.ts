/**
 * The public EpuManagement service. It holds no EPU logic: it turns each request into a message of
 * the domain registry or of one domain, checks it with that actor's own schema (so bad input is
 * refused here, naming the field, without a hop), asks the actor through the ActorService (the
 * cluster's router, which finds its owner from any node and follows it through a fail-over), and
 * maps the reply to the proto.
 *
 * Requests about one domain (describe, reconfigure, subscribe) first ask the registry whether the
 * domain exists, so that a name nobody added is NOT_FOUND without waking an actor for it.
 */
import type { EpuManagementHandlers } from '../generated/cei/v1/EpuManagement.js';
import type { Domain } from '../generated/cei/v1/Domain.js';
import type { DomainInstance } from '../generated/cei/v1/DomainInstance.js';
import type { DomainSummary as DomainSummaryProto } from '../generated/cei/v1/DomainSummary.js';
import type { DomainDefinition } from '../generated/cei/v1/DomainDefinition.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import { askRole } from '../actors/role-reply.js';
import {
  EPUM_REGISTRY_REF,
  domainRef,
  parseDomainMessage,
  parseRegistryMessage,
  type DefinitionRecord,
  type DomainDescription,
  type DomainInstanceView,
  type DomainOp,
  type DomainReplies,
  type DomainSummary,
  type RegistryReplies,
} from '../actors/epum/protocol.js';
import { handlerFactory, jsonField, remainingMs, roleAsker, type UnaryCall } from './unary.js';

export interface EpumServiceOptions {
  /** Largest accepted JSON field (bytes). */
  maxPayloadBytes: number;
}

function instanceOut(i: DomainInstanceView): DomainInstance {
  return {
    instance_id: i.instance_id,
    launch_id: i.launch_id,
    state: i.state,
    state_desc: i.state_desc ?? '',
    state_detail: i.state_detail ?? '',
    health: i.health,
    health_reason: i.health_reason ?? '',
    site: i.site,
    deployable_type: i.deployable_type,
    vars: i.vars,
    node_id: i.node_id ?? '',
    address: i.address ?? '',
    launch_ms: i.launch_time,
    state_changed_ms: i.state_changed_at,
    health_since_ms: i.health_since,
    running_since_ms: i.running_since ?? 0,
    terminate_asked_ms: i.terminate_asked_at ?? 0,
    last_heartbeat_ms: i.last_heartbeat ?? 0,
    metrics: i.metrics ?? {},
  };
}

export function domainOut(d: DomainDescription): Domain {
  return {
    id: d.id,
    status: d.status,
    engine: d.config.engine,
    generation: d.generation,
    created_ms: d.created_at,
    definition: d.definition ?? '',
    config_json: JSON.stringify(d.config),
    pending_config_json: d.pending_config ? JSON.stringify(d.pending_config) : '',
    version: d.version,
    applied_version: d.applied_version,
    engine_state_json: JSON.stringify(d.engine_state),
    error: d.error ?? '',
    sensors_json: JSON.stringify(d.sensors),
    instances: d.instances.map(instanceOut),
    subscribers: d.subscribers,
    last_tick_ms: d.last_tick_at ?? 0,
    last_decision_json: d.last_decision ? JSON.stringify(d.last_decision) : '',
  };
}

function summaryOut(s: DomainSummary): DomainSummaryProto {
  return { id: s.id, engine: s.engine, status: s.status, generation: s.generation, created_ms: s.created_at, definition: s.definition ?? '' };
}

function definitionOut(r: DefinitionRecord): DomainDefinition {
  return { name: r.name, version: r.version, definition_json: JSON.stringify(r.definition) };
}

export function epumService(system: ActorService, options: EpumServiceOptions, log: Logger): EpuManagementHandlers {
  const json = (text: string, field: string): unknown => jsonField(text, field, options.maxPayloadBytes);
  const optionalJson = (text: string, field: string): unknown => (text ? json(text, field) : undefined);
  const registry = roleAsker<RegistryReplies>(system, EPUM_REGISTRY_REF, parseRegistryMessage);

  /** Asks a domain the registry knows (NOT_FOUND otherwise). */
  const domain = async <Op extends DomainOp>(call: UnaryCall, id: string, message: { op: Op } & Record<string, unknown>) => {
    const parsed = parseDomainMessage(message);
    await registry(call, { op: 'domain.get', id });
    return askRole<DomainReplies[Op]>(system, domainRef(id), parsed, remainingMs(call));
  };

  const h = handlerFactory(log);

  return {
    AddDomain: h('AddDomain', async (req, call) => {
      const config = optionalJson(req.config_json, 'config_json');
      const r = await registry(call, {
        op: 'domain.add',
        id: req.id,
        ...(req.definition !== '' && { definition: req.definition }),
        ...(config !== undefined && { config }),
      });
      return { created: r.created, domain: domainOut(r.domain) };
    }),
    RemoveDomain: h('RemoveDomain', async (req, call) => registry(call, { op: 'domain.remove', id: req.id })),
    ListDomains: h('ListDomains', async (_req, call) => ({ domains: (await registry(call, { op: 'domain.list' })).domains.map(summaryOut) })),
    DescribeDomain: h('DescribeDomain', async (req, call) => domainOut(await domain(call, req.id, { op: 'describe' }))),
    ReconfigureDomain: h('ReconfigureDomain', async (req, call) => {
      const r = await domain(call, req.id, { op: 'reconfigure', patch: json(req.patch_json, 'patch_json') });
      return { version: r.version, pending_config_json: JSON.stringify(r.pending_config) };
    }),
    SubscribeDomain: h('SubscribeDomain', async (req, call) => domain(call, req.id, { op: 'subscribe', subscriber: req.subscriber })),
    UnsubscribeDomain: h('UnsubscribeDomain', async (req, call) => domain(call, req.id, { op: 'unsubscribe', subscriber: req.subscriber })),

    AddDomainDefinition: h('AddDomainDefinition', async (req, call) => {
      const r = await registry(call, { op: 'def.add', name: req.name, definition: json(req.definition_json, 'definition_json') });
      return { created: r.created, definition: definitionOut(r.record) };
    }),
    UpdateDomainDefinition: h('UpdateDomainDefinition', async (req, call) =>
      definitionOut(await registry(call, { op: 'def.update', name: req.name, definition: json(req.definition_json, 'definition_json') })),
    ),
    DescribeDomainDefinition: h('DescribeDomainDefinition', async (req, call) => definitionOut(await registry(call, { op: 'def.describe', name: req.name }))),
    ListDomainDefinitions: h('ListDomainDefinitions', async (_req, call) => ({
      definitions: (await registry(call, { op: 'def.list' })).definitions.map(definitionOut),
    })),
    RemoveDomainDefinition: h('RemoveDomainDefinition', async (req, call) => registry(call, { op: 'def.remove', name: req.name })),
  };
}
