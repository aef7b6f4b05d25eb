import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import type { ProtoGrpcType as ActorsProto } from '../generated/actors.js';

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

export const PUBLIC_PROTO_FILES = ['cei/v1/actors.proto'];

let cached: { definition: protoLoader.PackageDefinition; actors: ActorsProto } | undefined;

/** The public API's package definition, loaded once per process. */
export function publicApi(): { definition: protoLoader.PackageDefinition; actors: ActorsProto } {
  if (!cached) {
    const definition = protoLoader.loadSync(PUBLIC_PROTO_FILES, LOADER_OPTIONS);
    cached = { definition, actors: grpc.loadPackageDefinition(definition) as unknown as ActorsProto };
  }
  return cached;
}
