import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import { publicApi } from './proto.js';
import { actorsService, type ActorsServiceOptions } from './actors-service.js';
import { clusterService, type MembershipSource } from './cluster-service.js';
import { dtrsService } from './dtrs-service.js';
import { provisionerService } from './provisioner-service.js';
import { epumService } from './epum-service.js';
import { streamsService } from './streams-service.js';
import { dispatcherService } from './dispatcher-service.js';
import { haService } from './ha-service.js';

/** The services health checking reports on (besides the server as a whole, ''). */
const HEALTH_SERVICES = ['cei.v1.Actors', 'cei.v1.Dtrs', 'cei.v1.Provisioner', 'cei.v1.EpuManagement', 'cei.v1.Streams', 'cei.v1.ProcessDispatcher', 'cei.v1.HighAvailability'];

export interface ApiServerOptions extends ActorsServiceOptions {
  /** HOST:PORT to bind; port 0 picks a free one. */
  listen: string;
  /** Adds node-to-node services (the cluster transport) before the server binds. */
  addServices?: (server: grpc.Server) => void;
  /** The membership the Cluster service reports (set once the cluster started). */
  membership: () => MembershipSource | undefined;
}

/** The node's public gRPC server: Actors, Cluster, the CEI role services, and the standard health and reflection services. */
export class ApiServer {
  private constructor(
    private readonly server: grpc.Server,
    private readonly health: HealthImplementation,
    /** The address actually bound (the real port when 0 was asked). */
    readonly address: string,
  ) {}

  static async start(service: ActorService, options: ApiServerOptions, log: Logger): Promise<ApiServer> {
    const server = new grpc.Server({
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      // Channelz counts and timestamps every message of every call, for an admin service we do not
      // serve: about 3% of the server's CPU per message on a bulk-tell stream (measured).
      'grpc.enable_channelz': 0,
    });
    const { definition, actors } = publicApi();
    server.addService(actors.cei.v1.Actors.service, actorsService(service, options, log));
    server.addService(actors.cei.v1.Cluster.service, clusterService(options.membership));
    server.addService(actors.cei.v1.Dtrs.service, dtrsService(service, options, log));
    server.addService(actors.cei.v1.Provisioner.service, provisionerService(service, log));
    server.addService(actors.cei.v1.EpuManagement.service, epumService(service, options, log));
    server.addService(actors.cei.v1.Streams.service, streamsService(service, options, log));
    server.addService(actors.cei.v1.ProcessDispatcher.service, dispatcherService(service, options, log));
    server.addService(actors.cei.v1.HighAvailability.service, haService(service, options, log));
    options.addServices?.(server);
    const health = new HealthImplementation(Object.fromEntries(['', ...HEALTH_SERVICES].map((name) => [name, 'NOT_SERVING' as const])));
    health.addToServer(server);
    new ReflectionService(definition).addToServer(server);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(options.listen, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    const host = options.listen.slice(0, options.listen.lastIndexOf(':'));
    return new ApiServer(server, health, `${host}:${port}`);
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', ...HEALTH_SERVICES]) this.health.setStatus(name, status);
  }

  /** Stops accepting calls; calls in progress get `graceMs` to finish before they are cancelled. */
  async stop(graceMs: number): Promise<void> {
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
