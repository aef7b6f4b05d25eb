/**
 * The public Provisioner service. It holds no provisioning logic: it turns each request into a
 * provisioner message, checks it with the provisioner's own schema (so bad input is refused here,
 * naming the field, without a hop to the provisioner's node), asks the one provisioner actor through
 * the ActorService (the cluster's router, which finds the actor's owner from any node and follows it
 * through a fail-over), and maps the reply to the proto.
 */
import type { ProvisionerHandlers } from '../generated/cei/v1/Provisioner.js';
import type { Instance } from '../generated/cei/v1/Instance.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import {
  PROVISIONER_REF,
  parseProvisionerMessage,
  type InstanceView,
  type NodesReply,
  type ProvisionerReplies,
} from '../actors/provisioner.js';
import { handlerFactory, roleAsker } from './unary.js';

export function instanceOut(v: InstanceView): Instance {
  return {
    instance_id: v.instance_id,
    launch_id: v.launch_id,
    state: v.state,
    state_desc: v.state_desc ?? '',
    state_detail: v.state_detail ?? '',
    deployable_type: v.deployable_type,
    site: v.site,
    vars: v.vars,
    node_id: v.node_id ?? '',
    address: v.address ?? '',
    created_ms: v.created_at,
    state_changed_ms: v.state_changed_at,
    launched_ms: v.launched_at ?? 0,
  };
}

function nodesOut(r: NodesReply): { instances: Instance[]; unknown: string[] } {
  return { instances: r.instances.map(instanceOut), unknown: r.unknown };
}

export function provisionerService(system: ActorService, log: Logger): ProvisionerHandlers {
  const ask = roleAsker<ProvisionerReplies>(system, PROVISIONER_REF, parseProvisionerMessage);
  const h = handlerFactory(log);

  return {
    Provision: h('Provision', async (req, call) => {
      const r = await ask(call, {
        op: 'provision',
        launch_id: req.launch_id,
        deployable_type: req.deployable_type,
        site: req.site,
        count: req.count || 1,
        vars: req.vars,
        subscribers: req.subscribers,
      });
      return { created: r.created, instances: r.instances.map(instanceOut) };
    }),
    TerminateNodes: h('TerminateNodes', async (req, call) => nodesOut(await ask(call, { op: 'terminate_nodes', instance_ids: req.instance_ids }))),
    TerminateAll: h('TerminateAll', async (_req, call) => ask(call, { op: 'terminate_all' })),
    Enable: h('Enable', async (_req, call) => ask(call, { op: 'enable' })),
    DescribeNodes: h('DescribeNodes', async (req, call) => nodesOut(await ask(call, { op: 'describe_nodes', instance_ids: req.instance_ids }))),
    DumpState: h('DumpState', async (_req, call) => ({ state_json: JSON.stringify(await ask(call, { op: 'dump_state' })) })),
    Subscribe: h('Subscribe', async (req, call) => ask(call, { op: 'subscribe', subscriber: req.subscriber })),
    Unsubscribe: h('Unsubscribe', async (req, call) => ask(call, { op: 'unsubscribe', subscriber: req.subscriber })),
  };
}
