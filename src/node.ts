import { Store } from './runtime/store.js';
import { ActorSystem, RUNTIME_DEFAULTS, type RuntimeOptions } from './runtime/runtime.js';
import type { ActorType } from './runtime/actor-type.js';
import type { Logger } from './runtime/logger.js';
import { ApiServer } from './api/server.js';
import { builtinTypes } from './actors/index.js';
import { loadActorModule } from './actors/load.js';
import { InvalidArgumentError } from './errors.js';

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
  /** Worker nodes started by the provisioner are told their instance id. */
  instanceId?: string;
}

export const NODE_DEFAULTS: Omit<NodeOptions, 'role' | 'listen' | 'dataDir'> = {
  join: [],
  actorModules: [],
  shutdownGraceMs: 5_000,
  runtime: {},
};

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

  private constructor(
    readonly options: NodeOptions,
    readonly store: Store,
    readonly system: ActorSystem,
    readonly api: ApiServer,
    readonly log: Logger,
  ) {}

  get id(): string {
    return this.store.nodeId;
  }

  get address(): string {
    return this.api.address;
  }

  static async start(options: NodeOptions, log: Logger): Promise<CeiNode> {
    validateAddress(options.listen, '--listen');
    for (const seed of options.join) validateAddress(seed, '--join');
    const types: ActorType[] = builtinTypes();
    for (const path of options.actorModules) types.push(...(await loadActorModule(path)));
    const store = await Store.open(options.dataDir);
    const nodeLog = log.child({ node: store.nodeId });
    try {
      const runtime = { ...RUNTIME_DEFAULTS, ...options.runtime };
      const system = new ActorSystem({ store, logger: nodeLog, types }, runtime);
      const api = await ApiServer.start(system, { listen: options.listen, maxPayloadBytes: runtime.maxPayloadBytes, streamHighWater: 8192 }, nodeLog);
      const node = new CeiNode(options, store, system, api, nodeLog);
      const recovered = await system.recover();
      if (recovered > 0) nodeLog.info({ recovered }, 'recovered actors with pending work');
      api.setServing(true);
      return node;
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
  }

  /** Graceful stop: no new work, the turn in progress finishes, everything written is flushed. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.api.setServing(false);
      await this.system.shutdown();
      await this.api.stop(this.options.shutdownGraceMs);
      await this.store.close();
    })();
    return this.stopped;
  }
}
