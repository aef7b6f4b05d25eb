import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import type { ProtoGrpcType as ActorsOnly } from '../generated/actors.js';
import type { ProtoGrpcType as ClusterOnly } from '../generated/cluster.js';
import type { ProtoGrpcType as PeerProto } from '../generated/peer.js';
import type { ProtoGrpcType as DtrsOnly } from '../generated/dtrs.js';
import type { ProtoGrpcType as ProvisionerOnly } from '../generated/provisioner.js';
import type { ProtoGrpcType as EpumOnly } from '../generated/epum.js';
import type { ProtoGrpcType as StreamsOnly } from '../generated/streams.js';
import type { ProtoGrpcType as DispatcherOnly } from '../generated/dispatcher.js';
import type { ProtoGrpcType as HaOnly } from '../generated/ha.js';

/** The public services (Actors, Cluster, and one per CEI role) as loaded from their protos. */
type ActorsProto = ActorsOnly & ClusterOnly & DtrsOnly & ProvisionerOnly & EpumOnly & StreamsOnly & DispatcherOnly & HaOnly;

/** proto/ at the package root, from src/api (tsx) as from dist/api (built). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));

/** Loader options shared by server and clients: field names as in the .proto, 64-bit ints as strings. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export const PUBLIC_PROTO_FILES = ['cei/v1/actors.proto', 'cei/v1/cluster.proto', 'cei/v1/dtrs.proto', 'cei/v1/provisioner.proto', 'cei/v1/epum.proto', 'cei/v1/streams.proto', 'cei/v1/dispatcher.proto', 'cei/v1/ha.proto'];

/** Loads `files` into a package definition once per process, and the gRPC objects made from it. */
function loadedOnce<T>(files: string[]): () => { definition: protoLoader.PackageDefinition; api: T } {
  let cached: { definition: protoLoader.PackageDefinition; api: T } | undefined;
  return () => {
    if (!cached) {
      const definition = protoLoader.loadSync(files, LOADER_OPTIONS);
      cached = { definition, api: grpc.loadPackageDefinition(definition) as unknown as T };
    }
    return cached;
  };
}

const publicLoaded = loadedOnce<ActorsProto>(PUBLIC_PROTO_FILES);

/** The public API's package definition, loaded once per process. */
export function publicApi(): { definition: protoLoader.PackageDefinition; actors: ActorsProto } {
  const { definition, api } = publicLoaded();
  return { definition, actors: api };
}

/** The node-to-node API (cei.v1.Peer): served beside the public API, never listed by reflection. */
export const PEER_PROTO_FILES = ['cei/v1/peer.proto'];

const peerLoaded = loadedOnce<PeerProto>(PEER_PROTO_FILES);

/** The node-to-node API's package definition, loaded once per process. */
export function peerApi(): { definition: protoLoader.PackageDefinition; peer: PeerProto } {
  const { definition, api } = peerLoaded();
  return { definition, peer: api };
}
