/**
 * Child process: serves the echo service on a free loopback port, prints `ready <address>`, and exits
 * on SIGTERM. Run by raw-grpc-echo.ts; not a module to import.
 */
import * as grpc from '@grpc/grpc-js';
import { echoApi, type EchoMessage } from './echo-proto.js';

const server = new grpc.Server();
server.addService(echoApi().service, {
  Echo(call: grpc.ServerUnaryCall<EchoMessage, EchoMessage>, callback: grpc.sendUnaryData<EchoMessage>) {
    callback(null, { payload: call.request.payload });
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`echo server: cannot bind: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ready 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
