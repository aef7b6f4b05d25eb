/**
 * A typed client of a node's public Provisioner service. It speaks the provisioner's own types
 * (src/actors/provisioner-protocol.ts); errors are grpc ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { ProvisionerClient as ProvisionerGrpcClient } from './generated/cei/v1/Provisioner.js';
import type { Instance__Output } from './generated/cei/v1/Instance.js';
import type { InstanceView, NodesReply, ProvisionerDump, ProvisionReply } from './actors/provisioner-protocol.js';
import type { InstanceState, StateDesc } from './actors/provisioner-states.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';

export function instanceIn(i: Instance__Output): InstanceView {
  const view: InstanceView = {
    instance_id: i.instance_id,
    launch_id: i.launch_id,
    state: i.state as InstanceState,
    deployable_type: i.deployable_type,
    site: i.site,
    vars: i.vars,
    created_at: Number(i.created_ms),
    state_changed_at: Number(i.state_changed_ms),
  };
  if (i.state_desc) view.state_desc = i.state_desc as StateDesc;
  if (i.state_detail) view.state_detail = i.state_detail;
  if (i.node_id) view.node_id = i.node_id;
  if (i.address) view.address = i.address;
  if (Number(i.launched_ms) > 0) view.launched_at = Number(i.launched_ms);
  return view;
}

function nodesIn(r: { instances: Instance__Output[]; unknown: string[] }): NodesReply {
  return { instances: r.instances.map(instanceIn), unknown: r.unknown };
}

export interface ProvisionArgs {
  launchId: string;
  deployableType: string;
  site: string;
  count?: number;
  vars?: Record<string, string>;
  /** Actors ("type/id") told every change of the launch's instances. */
  subscribers?: string[];
}

export class ProvisionerClient {
  /** The generated client, for calls this class does not wrap. */
  readonly raw: ProvisionerGrpcClient;

  /** `channel` shares an existing client's connection (e.g. CeiClient's `actors.getChannel()`). */
  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.Provisioner(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  async provision(args: ProvisionArgs, deadlineMs?: number): Promise<ProvisionReply> {
    const req = {
      launch_id: args.launchId,
      deployable_type: args.deployableType,
      site: args.site,
      count: args.count ?? 1,
      vars: args.vars ?? {},
      subscribers: args.subscribers ?? [],
    };
    const r = await unary<{ created: boolean; instances: Instance__Output[] }>((o, cb) => this.raw.Provision(req, o, cb), deadlineMs);
    return { created: r.created, instances: r.instances.map(instanceIn) };
  }

  async terminate(instanceIds: string[], deadlineMs?: number): Promise<NodesReply> {
    return nodesIn(await unary((o, cb) => this.raw.TerminateNodes({ instance_ids: instanceIds }, o, cb), deadlineMs));
  }

  async terminateAll(deadlineMs?: number): Promise<{ terminating: number }> {
    return unary((o, cb) => this.raw.TerminateAll({}, o, cb), deadlineMs);
  }

  async enable(deadlineMs?: number): Promise<{ changed: boolean }> {
    return unary((o, cb) => this.raw.Enable({}, o, cb), deadlineMs);
  }

  /** The given instances, or all of them when `instanceIds` is empty. */
  async describe(instanceIds: string[] = [], deadlineMs?: number): Promise<NodesReply> {
    return nodesIn(await unary((o, cb) => this.raw.DescribeNodes({ instance_ids: instanceIds }, o, cb), deadlineMs));
  }

  async dump(deadlineMs?: number): Promise<ProvisionerDump> {
    const r = await unary<{ state_json: string }>((o, cb) => this.raw.DumpState({}, o, cb), deadlineMs);
    return JSON.parse(r.state_json) as ProvisionerDump;
  }

  async subscribe(subscriber: string, deadlineMs?: number): Promise<{ changed: boolean }> {
    return unary((o, cb) => this.raw.Subscribe({ subscriber }, o, cb), deadlineMs);
  }

  async unsubscribe(subscriber: string, deadlineMs?: number): Promise<{ changed: boolean }> {
    return unary((o, cb) => this.raw.Unsubscribe({ subscriber }, o, cb), deadlineMs);
  }

  close(): void {
    this.raw.close();
  }
}
