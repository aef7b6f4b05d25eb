import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import type { ProtoGrpcType as ActorsOnly } from '../generated/actors.js';
import type { ProtoGrpcType as ClusterOnly } from '../generated/cluster.js';
import type { ProtoGrpcType as PeerProto } from '../generated/peer.js';

/** The public services (Actors, Cluster) as loaded from their protos. */
type ActorsProto = ActorsOnly & ClusterOnly;

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

export const PUBLIC_PROTO_FILES = ['cei/v1/actors.proto', 'cei/v1/cluster.proto'];

let cached: { definition: protoLoader.PackageDefinition; actors: ActorsProto } | undefined;

/** The public API's package definition, loaded once per process. */
export function publicApi(): { definition: protoLoader.PackageDefinition; actors: ActorsProto } {
  if (!cached) {
    const definition = protoLoader.loadSync(PUBLIC_PROTO_FILES, LOADER_OPTIONS);
    cached = { definition, actors: grpc.loadPackageDefinition(definition) as unknown as ActorsProto };
  }
  return cached;
}

/** The node-to-node API (cei.v1.Peer): served beside the public API, never listed by reflection. */
export const PEER_PROTO_FILES = ['cei/v1/peer.proto'];

let peerCached: { definition: protoLoader.PackageDefinition; peer: PeerProto } | undefined;

/** The node-to-node API's package definition, loaded once per process. */
export function peerApi(): { definition: protoLoader.PackageDefinition; peer: PeerProto } {
  if (!peerCached) {
    const definition = protoLoader.loadSync(PEER_PROTO_FILES, LOADER_OPTIONS);
    peerCached = { definition, peer: grpc.loadPackageDefinition(definition) as unknown as PeerProto };
  }
  return peerCached;
}
