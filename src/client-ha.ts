/**
 * A typed client of a node's public HighAvailability service, speaking the HA protocol's own types
 * (src/actors/ha/protocol.ts); errors are grpc ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { HighAvailabilityClient } from './generated/cei/v1/HighAvailability.js';
import type { HaService__Output } from './generated/cei/v1/HaService.js';
import type { HaServiceSummary__Output } from './generated/cei/v1/HaServiceSummary.js';
import type { HaDescription, HaProcessView, HaRemoveReply, HaSummary } from './actors/ha/protocol.js';
import type { HaState, PolicyName } from './actors/ha/policy.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';

export function haServiceIn(s: HaService__Output): HaDescription {
  const d: HaDescription = {
    name: s.name,
    state: s.state as HaState,
    config: JSON.parse(s.config_json),
    processes: s.processes.map((p) => {
      const v: HaProcessView = { upid: p.upid, state: p.state as HaProcessView['state'], dispatcher: p.dispatcher, scheduled_at: Number(p.scheduled_ms), terminating: p.terminating };
      if (p.last_error) v.last_error = p.last_error;
      return v;
    }),
    samples: JSON.parse(s.samples_json || '[]'),
    failures: s.failures,
    removing: s.removing,
    created_at: Number(s.created_ms),
  };
  if (s.has_last_value) d.last_value = s.last_value;
  if (Number(s.last_tick_ms) > 0) d.last_tick_at = Number(s.last_tick_ms);
  if (s.last_error) d.last_error = s.last_error;
  return d;
}

function summaryIn(s: HaServiceSummary__Output): HaSummary {
  return { name: s.name, policy: s.policy as PolicyName, definition_id: s.definition_id, created_at: Number(s.created_ms), removing: s.removing };
}

export class HaClient {
  readonly raw: HighAvailabilityClient;

  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.HighAvailability(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  async create(name: string, config: unknown, deadlineMs?: number): Promise<HaDescription> {
    return haServiceIn(await unary<HaService__Output>((o, cb) => this.raw.CreateService({ name, config_json: JSON.stringify(config) }, o, cb), deadlineMs));
  }

  async describe(name: string, deadlineMs?: number): Promise<HaDescription> {
    return haServiceIn(await unary<HaService__Output>((o, cb) => this.raw.DescribeService({ name }, o, cb), deadlineMs));
  }

  async list(deadlineMs?: number): Promise<HaSummary[]> {
    const r = await unary<{ services: HaServiceSummary__Output[] }>((o, cb) => this.raw.ListServices({}, o, cb), deadlineMs);
    return r.services.map(summaryIn);
  }

  /** `policy` empty keeps the policy; `parameters` are merged over the old ones for the same policy. */
  async reconfigure(name: string, change: { policy?: string; policy_parameters?: unknown }, deadlineMs?: number): Promise<HaDescription> {
    const req = { name, policy: change.policy ?? '', policy_parameters_json: change.policy_parameters === undefined ? '' : JSON.stringify(change.policy_parameters) };
    return haServiceIn(await unary<HaService__Output>((o, cb) => this.raw.ReconfigureService(req, o, cb), deadlineMs));
  }

  async remove(name: string, deadlineMs?: number): Promise<HaRemoveReply> {
    return unary<HaRemoveReply>((o, cb) => this.raw.RemoveService({ name }, o, cb), deadlineMs);
  }

  close(): void {
    this.raw.close();
  }
}
