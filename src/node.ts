import { Store } from './runtime/store.js';
import { ActorSystem, RUNTIME_DEFAULTS, type RuntimeOptions } from './runtime/runtime.js';
import type { ActorType } from './runtime/actor-type.js';
import type { Logger } from './runtime/logger.js';
import { ApiServer } from './api/server.js';
import { builtinTypes, type RoleOptions } from './actors/index.js';
import { eeAgentRef, type EeAgentType } from './actors/ee-agent/agent.js';
import { EE_AGENT_TYPE } from './actors/ee-agent/protocol.js';
import type { RoleEnv } from './actors/role-env.js';
import { announceInstance } from './actors/provisioner-announce.js';
import { startHeartbeat } from './actors/epum/heartbeat.js';
import { createEngineRegistry, loadEngineModule } from './actors/epum/engine.js';
import { MembersFeed } from './actors/role-members.js';
import { loadActorModule } from './actors/load.js';
import { InvalidArgumentError, errorMessage } from './errors.js';
import { systemClock } from './runtime/clock.js';
import { Cluster, loadStoredLosses, loadStoredMembership } from './cluster/cluster.js';
import { CLUSTER_DEFAULTS, type ClusterOptions } from './cluster/cluster-options.js';
import { GrpcTransport } from './cluster/transport-grpc.js';
import type { PlacementClass } from './cluster/ring-placement.js';

export type NodeRole = 'bootstrap' | 'control' | 'worker';
export const NODE_ROLES: readonly NodeRole[] = ['bootstrap', 'control', 'worker'];

export interface NodeOptions {
  role: NodeRole;
  /** HOST:PORT for the public gRPC API; port 0 picks a free port. */
  listen: string;
  /** Seeds to join (used by the cluster layer). */
  join: string[];
  /** Data directory: the node's LevelDB and identity. */
  dataDir: string;
  /** Modules with extra actor types. */
  actorModules: string[];
  /** How long calls in progress may run on shutdown before they are cancelled. */
  shutdownGraceMs: number;
  runtime: Partial<RuntimeOptions>;
  cluster: Partial<ClusterOptions>;
  /** Worker nodes started by the provisioner are told their instance id (and announce it to it). */
  instanceId?: string;
  /** Options of the CEI roles (the provisioner ...), over their defaults. */
  roles?: RoleOptions;
  /** Modules with extra decision engines for EPU management (--engines). */
  engineModules?: string[];
  /** A worker whose domain says it is a zombie (terminated long ago, still running) calls this to be stopped. */
  onZombie?: () => void;
}

export const NODE_DEFAULTS: Omit<NodeOptions, 'role' | 'listen' | 'dataDir'> = {
  join: [],
  actorModules: [],
  shutdownGraceMs: 5_000,
  runtime: {},
  cluster: {},
};

/** A node still not in a cluster this long after it started says why (and again every as long). */
const JOIN_WAIT_WARN_MS = 5_000;

const ADDRESS = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Throws InvalidArgumentError unless `address` is HOST:PORT with a port in 0..65535. */
export function validateAddress(address: string, what: string): string {
  const m = ADDRESS.exec(address);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError(`${what} "${address}" is not HOST:PORT`);
  return address;
}

/**
 * One cei node: its store, its actor system and its public API. Start with CeiNode.start; stop with
 * stop(), which finishes the turns in progress, flushes and closes the store.
 */
export class CeiNode {
  private stopped: Promise<void> | undefined;
  private announcer: { stop(): void } | undefined;
  private heartbeat: { stop(): void } | undefined;
  private membersFeed: MembersFeed | undefined;
  private eeAgent: EeAgentType | undefined;

  private constructor(
    readonly options: NodeOptions,
    readonly store: Store,
    readonly system: ActorSystem,
    readonly cluster: Cluster,
    readonly api: ApiServer,
    readonly log: Logger,
  ) {}

  get id(): string {
    return this.store.nodeId;
  }

  get address(): string {
    return this.api.address;
  }

  /**
   * Opens the data directory, serves the public and node-to-node APIs, and joins the cluster (a
   * bootstrap node without seeds is a cluster of one). Resolves once the node is up in its view.
   */
  static async start(options: NodeOptions, log: Logger): Promise<CeiNode> {
    validateAddress(options.listen, '--listen');
    for (const seed of options.join) validateAddress(seed, '--join');
    const clusterOptions: ClusterOptions = { ...CLUSTER_DEFAULTS, ...options.cluster };
    if (!Number.isSafeInteger(clusterOptions.replicas) || clusterOptions.replicas < 1) {
      throw new InvalidArgumentError(`--replicas must be a whole number >= 1 (got ${clusterOptions.replicas})`);
    }
    // The roles reach the cluster through late-bound functions: the cluster is built from the types.
    let wired: Cluster | undefined;
    const members = () => (wired?.membership ? wired.view.list() : []);
    const feed = new MembersFeed(() => (wired?.membership ? wired.view : undefined), members, systemClock, log);
    const roleEnv: RoleEnv = {
      service: () => wired!.router,
      members,
      watchMembers: feed.watch,
      dataDir: options.dataDir,
      clock: systemClock,
      log,
    };
    const engines = options.roles?.engines ?? createEngineRegistry();
    for (const path of options.engineModules ?? []) for (const engine of await loadEngineModule(path)) engines.registerEngine(engine.name, engine);
    const types: ActorType[] = builtinTypes(roleEnv, {
      ...options.roles,
      engines,
      eeAgent: { ...options.roles?.eeAgent, role: options.role, ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}) },
    });
    const eeAgent = types.find((t) => t.name === EE_AGENT_TYPE) as EeAgentType | undefined;
    for (const path of options.actorModules) types.push(...(await loadActorModule(path)));
    const classes = new Map<string, PlacementClass>(types.map((t) => [t.name, t.placement ?? 'any']));
    const store = await Store.open(options.dataDir);
    const nodeLog = log.child({ node: store.nodeId });
    const transport = new GrpcTransport({ log: nodeLog });
    try {
      const runtime = { ...RUNTIME_DEFAULTS, ...options.runtime };
      const cluster = new Cluster({
        nodeId: store.nodeId,
        role: options.role,
        store,
        transport,
        clock: systemClock,
        log: nodeLog,
        options: clusterOptions,
        classOf: (type) => classes.get(type) ?? 'any',
      });
      wired = cluster;
      const system = new ActorSystem({ store, logger: nodeLog, types, placement: cluster.placement, replicator: cluster.replicator }, runtime);
      cluster.attach(system);
      const api = await ApiServer.start(
        cluster.router,
        {
          listen: options.listen,
          maxPayloadBytes: runtime.maxPayloadBytes,
          streamHighWater: 8192,
          addServices: (server) => transport.addToServer(server),
          membership: () =>
            cluster.membership
              ? { view: cluster.view, isFenced: cluster.isFenced, nodeId: store.nodeId, ownerOf: (ref) => cluster.placement.ownerOf(ref) }
              : undefined,
        },
        nodeLog,
      );
      const node = new CeiNode(options, store, system, cluster, api, nodeLog);
      node.membersFeed = feed;
      node.eeAgent = eeAgent;
      const stored = await loadStoredMembership(store);
      cluster.placement.restoreLosses(await loadStoredLosses(store));
      cluster.start(api.address, options.join, stored);
      if (!cluster.isUp) nodeLog.info({ seeds: options.join, known: stored.addresses.length }, 'joining the cluster');
      // Joining can wait forever (a restarted member never forms a cluster of its own): say so, at a
      // level `cei up` prints, rather than sit silent.
      const waiting = setInterval(() => {
        const why = stored.member
          ? 'this node was a member: it rejoins only through its seeds or the members it knew, never alone; start one of them (or give this node an empty data directory to start afresh)'
          : 'no seed answers yet';
        nodeLog.warn({ seeds: options.join, known: stored.addresses }, `still waiting to join the cluster: ${why}`);
      }, JOIN_WAIT_WARN_MS);
      waiting.unref();
      try {
        await cluster.whenUp();
      } finally {
        clearInterval(waiting);
      }
      api.setServing(true);
      if (options.role === 'worker') {
        // The first message activates the agent; its activation reports what an earlier run of this worker left behind.
        cluster.router
          .tell(eeAgentRef(store.nodeId), { boot: true })
          .catch((err: unknown) => nodeLog.warn({ err: errorMessage(err) }, 'could not boot the execution-engine agent'));
      }
      if (options.instanceId !== undefined) {
        node.announcer = announceInstance(cluster.router, { instanceId: options.instanceId, nodeId: store.nodeId, address: api.address }, systemClock, nodeLog);
        node.heartbeat = startHeartbeat(cluster.router, { instanceId: options.instanceId, nodeId: store.nodeId }, systemClock, nodeLog, {
          onZombie: options.onZombie ?? (() => {}),
        });
      }
      return node;
    } catch (err) {
      feed.stop();
      await transport.stop().catch(() => {});
      await store.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Graceful stop: hands this node's actors over (a leave), then takes no new work, lets the turn in
   * progress finish, flushes and closes the store.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.api.setServing(false);
      this.announcer?.stop();
      this.heartbeat?.stop();
      this.membersFeed?.stop();
      await this.cluster.leave(this.options.shutdownGraceMs);
      await this.system.shutdown();
      await this.eeAgent?.close();
      await this.cluster.stop();
      await this.api.stop(this.options.shutdownGraceMs);
      await this.store.close();
    })();
    return this.stopped;
  }
}
