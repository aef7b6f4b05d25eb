/**
 * A typed client of a node's public EpuManagement service. It speaks EPU management's own types
 * (src/actors/epum/protocol.ts): configs go out as JSON and come back parsed; errors are grpc
 * ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { EpuManagementClient as EpumGrpcClient } from './generated/cei/v1/EpuManagement.js';
import type { Domain__Output } from './generated/cei/v1/Domain.js';
import type { DomainInstance__Output } from './generated/cei/v1/DomainInstance.js';
import type { DomainSummary__Output } from './generated/cei/v1/DomainSummary.js';
import type { DomainDefinition__Output } from './generated/cei/v1/DomainDefinition.js';
import type {
  DefinitionRecord,
  DomainDescription,
  DomainInstanceView,
  DomainStatus,
  DomainSummary,
  ReconfigureReply,
  RemoveReply,
} from './actors/epum/protocol.js';
import type { HealthState, InstanceState } from './actors/epum/engine.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';

function instanceIn(i: DomainInstance__Output): DomainInstanceView {
  const v: DomainInstanceView = {
    instance_id: i.instance_id,
    launch_id: i.launch_id,
    state: i.state as InstanceState,
    health: i.health as HealthState,
    health_since: Number(i.health_since_ms),
    site: i.site,
    deployable_type: i.deployable_type,
    vars: i.vars,
    launch_time: Number(i.launch_ms),
    state_changed_at: Number(i.state_changed_ms),
  };
  if (i.state_desc) v.state_desc = i.state_desc;
  if (i.state_detail) v.state_detail = i.state_detail;
  if (i.health_reason) v.health_reason = i.health_reason;
  if (i.node_id) v.node_id = i.node_id;
  if (i.address) v.address = i.address;
  if (Number(i.running_since_ms) > 0) v.running_since = Number(i.running_since_ms);
  if (Number(i.terminate_asked_ms) > 0) v.terminate_asked_at = Number(i.terminate_asked_ms);
  if (Number(i.last_heartbeat_ms) > 0) v.last_heartbeat = Number(i.last_heartbeat_ms);
  if (Object.keys(i.metrics).length > 0) v.metrics = i.metrics;
  return v;
}

export function domainIn(d: Domain__Output): DomainDescription {
  const instances = d.instances.map(instanceIn);
  const states: Record<string, number> = {};
  const health: Record<string, number> = {};
  for (const i of instances) {
    if (i.state === 'TERMINATED' || i.state === 'FAILED' || i.state === 'REJECTED') continue;
    states[i.state] = (states[i.state] ?? 0) + 1;
    health[i.health] = (health[i.health] ?? 0) + 1;
  }
  const out: DomainDescription = {
    id: d.id,
    status: d.status as DomainStatus,
    generation: d.generation,
    created_at: Number(d.created_ms),
    config: JSON.parse(d.config_json),
    version: Number(d.version),
    applied_version: Number(d.applied_version),
    engine_state: JSON.parse(d.engine_state_json),
    sensors: JSON.parse(d.sensors_json || '{}'),
    instances,
    counts: { states, health },
    subscribers: d.subscribers,
  };
  if (d.definition) out.definition = d.definition;
  if (d.pending_config_json) out.pending_config = JSON.parse(d.pending_config_json);
  if (d.error) out.error = d.error;
  if (Number(d.last_tick_ms) > 0) out.last_tick_at = Number(d.last_tick_ms);
  if (d.last_decision_json) out.last_decision = JSON.parse(d.last_decision_json);
  return out;
}

function summaryIn(s: DomainSummary__Output): DomainSummary {
  const out: DomainSummary = { id: s.id, engine: s.engine, status: s.status as DomainStatus, generation: s.generation, created_at: Number(s.created_ms) };
  if (s.definition) out.definition = s.definition;
  return out;
}

function definitionIn(d: DomainDefinition__Output): DefinitionRecord {
  return { name: d.name, version: Number(d.version), definition: JSON.parse(d.definition_json) };
}

export interface AddDomainArgs {
  id: string;
  /** A definition to start from. */
  definition?: string;
  /** The config, over the definition's. */
  config?: unknown;
}

export class EpumClient {
  /** The generated client, for calls this class does not wrap. */
  readonly raw: EpumGrpcClient;

  /** `channel` shares an existing client's connection (e.g. CeiClient's `actors.getChannel()`). */
  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.EpuManagement(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  async add(args: AddDomainArgs, deadlineMs?: number): Promise<{ created: boolean; domain: DomainDescription }> {
    const req = { id: args.id, definition: args.definition ?? '', config_json: args.config === undefined ? '' : JSON.stringify(args.config) };
    const r = await unary<{ created: boolean; domain: Domain__Output | null }>((o, cb) => this.raw.AddDomain(req, o, cb), deadlineMs);
    return { created: r.created, domain: domainIn(r.domain!) };
  }

  async remove(id: string, deadlineMs?: number): Promise<RemoveReply> {
    const r = await unary<{ id: string; status: string; terminating: number }>((o, cb) => this.raw.RemoveDomain({ id }, o, cb), deadlineMs);
    return { id: r.id, status: r.status as DomainStatus, terminating: r.terminating };
  }

  async list(deadlineMs?: number): Promise<DomainSummary[]> {
    const r = await unary<{ domains: DomainSummary__Output[] }>((o, cb) => this.raw.ListDomains({}, o, cb), deadlineMs);
    return r.domains.map(summaryIn);
  }

  async describe(id: string, deadlineMs?: number): Promise<DomainDescription> {
    return domainIn(await unary<Domain__Output>((o, cb) => this.raw.DescribeDomain({ id }, o, cb), deadlineMs));
  }

  /** `patch`: {engine_conf?, health?, tick_seconds?}; applied on the domain's next tick. */
  async reconfigure(id: string, patch: unknown, deadlineMs?: number): Promise<ReconfigureReply> {
    const r = await unary<{ version: string; pending_config_json: string }>(
      (o, cb) => this.raw.ReconfigureDomain({ id, patch_json: JSON.stringify(patch) }, o, cb),
      deadlineMs,
    );
    return { version: Number(r.version), pending_config: JSON.parse(r.pending_config_json) };
  }

  async subscribe(id: string, subscriber: string, deadlineMs?: number): Promise<{ changed: boolean }> {
    return unary((o, cb) => this.raw.SubscribeDomain({ id, subscriber }, o, cb), deadlineMs);
  }

  async unsubscribe(id: string, subscriber: string, deadlineMs?: number): Promise<{ changed: boolean }> {
    return unary((o, cb) => this.raw.UnsubscribeDomain({ id, subscriber }, o, cb), deadlineMs);
  }

  async addDefinition(name: string, definition: unknown, deadlineMs?: number): Promise<{ created: boolean; record: DefinitionRecord }> {
    const r = await unary<{ created: boolean; definition: DomainDefinition__Output | null }>(
      (o, cb) => this.raw.AddDomainDefinition({ name, definition_json: JSON.stringify(definition) }, o, cb),
      deadlineMs,
    );
    return { created: r.created, record: definitionIn(r.definition!) };
  }

  async updateDefinition(name: string, definition: unknown, deadlineMs?: number): Promise<DefinitionRecord> {
    return definitionIn(await unary((o, cb) => this.raw.UpdateDomainDefinition({ name, definition_json: JSON.stringify(definition) }, o, cb), deadlineMs));
  }

  async describeDefinition(name: string, deadlineMs?: number): Promise<DefinitionRecord> {
    return definitionIn(await unary((o, cb) => this.raw.DescribeDomainDefinition({ name }, o, cb), deadlineMs));
  }

  async listDefinitions(deadlineMs?: number): Promise<DefinitionRecord[]> {
    const r = await unary<{ definitions: DomainDefinition__Output[] }>((o, cb) => this.raw.ListDomainDefinitions({}, o, cb), deadlineMs);
    return r.definitions.map(definitionIn);
  }

  async removeDefinition(name: string, deadlineMs?: number): Promise<{ removed: string }> {
    return unary((o, cb) => this.raw.RemoveDomainDefinition({ name }, o, cb), deadlineMs);
  }

  close(): void {
    this.raw.close();
  }
}
