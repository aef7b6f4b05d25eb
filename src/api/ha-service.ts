/**
 * The public HighAvailability service. It holds no HA logic: it turns each request into a message of
 * the HA registry or of one service (checked with that actor's own parser, so bad input is refused
 * here naming the field), asks it through the ActorService and maps the reply to the proto.
 * Requests about one service first ask the registry whether it exists (NOT_FOUND otherwise).
 */
import type { HighAvailabilityHandlers } from '../generated/cei/v1/HighAvailability.js';
import type { HaService } from '../generated/cei/v1/HaService.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import { askRole } from '../actors/role-reply.js';
import { HA_REGISTRY_REF, haRef, parseHaMessage, parseHaRegistryMessage, type HaDescription, type HaRemoveReply, type HaSummary } from '../actors/ha/protocol.js';
import { handlerFactory, jsonField, remainingMs, type UnaryCall } from './unary.js';

export interface HaServiceOptions {
  /** Largest accepted JSON field (bytes). */
  maxPayloadBytes: number;
}

export function haServiceOut(d: HaDescription): HaService {
  return {
    name: d.name,
    state: d.state,
    policy: d.config.policy,
    config_json: JSON.stringify(d.config),
    processes: d.processes.map((p) => ({
      upid: p.upid,
      state: p.state,
      dispatcher: p.dispatcher,
      scheduled_ms: p.scheduled_at,
      terminating: p.terminating,
      last_error: p.last_error ?? '',
    })),
    samples_json: JSON.stringify(d.samples),
    has_last_value: d.last_value !== undefined,
    last_value: d.last_value ?? 0,
    failures: d.failures,
    removing: d.removing,
    created_ms: d.created_at,
    last_tick_ms: d.last_tick_at ?? 0,
    last_error: d.last_error ?? '',
  };
}

export function haService(system: ActorService, options: HaServiceOptions, log: Logger): HighAvailabilityHandlers {
  const registry = <T>(call: UnaryCall, message: unknown) => askRole<T>(system, HA_REGISTRY_REF, parseHaRegistryMessage(message), remainingMs(call));
  const service = async <T>(call: UnaryCall, name: string, message: unknown) => {
    const parsed = parseHaMessage(message);
    await registry(call, { op: 'get', name });
    return askRole<T>(system, haRef(name), parsed, remainingMs(call));
  };
  const h = handlerFactory(log);
  return {
    CreateService: h('CreateService', async (req, call) => {
      const config = jsonField(req.config_json, 'config_json', options.maxPayloadBytes);
      return haServiceOut(await registry<HaDescription>(call, { op: 'create', name: req.name, config }));
    }),
    DescribeService: h('DescribeService', async (req, call) => haServiceOut(await service<HaDescription>(call, req.name, { op: 'describe' }))),
    ListServices: h('ListServices', async (_req, call) => ({
      services: (await registry<{ services: HaSummary[] }>(call, { op: 'list' })).services.map((s) => ({ ...s, created_ms: s.created_at })),
    })),
    ReconfigureService: h('ReconfigureService', async (req, call) => {
      const message = {
        op: 'reconfigure',
        ...(req.policy !== '' && { policy: req.policy }),
        ...(req.policy_parameters_json !== '' && { policy_parameters: jsonField(req.policy_parameters_json, 'policy_parameters_json', options.maxPayloadBytes) }),
      };
      return haServiceOut(await service<HaDescription>(call, req.name, message));
    }),
    RemoveService: h('RemoveService', async (req, call) => registry<HaRemoveReply>(call, { op: 'remove', name: req.name })),
  };
}
