/**
 * Child process: the server half of the raw TellStream figure (raw-tellstream.ts). Serves the public
 * `cei.v1.Actors` TellStream with a handler that acknowledges every tell the moment it arrives - no
 * actor, no store, no cluster - with a cei node's server options, prints `ready <address>`, and
 * exits on SIGTERM. Not a module to import.
 */
import * as grpc from '@grpc/grpc-js';
import { publicApi } from '../../src/api/proto.js';
import type { TellRequest__Output } from '../../src/generated/cei/v1/TellRequest.js';
import type { TellReply } from '../../src/generated/cei/v1/TellReply.js';

const server = new grpc.Server({
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
});
let seq = 0;
const unimplemented = (_call: unknown, callback: (err: Partial<grpc.ServiceError>) => void) => callback({ code: grpc.status.UNIMPLEMENTED });
const { actors } = publicApi();
const handlers: Record<string, unknown> = Object.fromEntries(Object.keys(actors.cei.v1.Actors.service).map((m) => [m, unimplemented]));
handlers.TellStream = (call: grpc.ServerDuplexStream<TellRequest__Output, TellReply>) => {
  call.on('data', (req: TellRequest__Output) => call.write({ message_id: req.message_id, seq: ++seq }));
  call.on('end', () => call.end());
  call.on('error', () => {});
};
server.addService(actors.cei.v1.Actors.service, handlers as grpc.UntypedServiceImplementation);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`raw TellStream server: cannot bind: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ready 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
