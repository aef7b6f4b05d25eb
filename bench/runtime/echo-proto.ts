import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface EchoMessage {
  payload: Buffer;
}

export type EchoClient = grpc.Client & {
  Echo(req: EchoMessage, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoMessage) => void): grpc.ClientUnaryCall;
};

interface EchoPackage {
  bench: { v1: { Echo: grpc.ServiceClientConstructor } };
}

const PROTO = fileURLToPath(new URL('./echo.proto', import.meta.url));

/** The echo service definition, loaded with the same loader options as cei's public API. */
export function echoApi(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return (grpc.loadPackageDefinition(definition) as unknown as EchoPackage).bench.v1.Echo;
}

export function echoClient(address: string): EchoClient {
  const Echo = echoApi();
  return new Echo(address, grpc.credentials.createInsecure()) as unknown as EchoClient;
}
