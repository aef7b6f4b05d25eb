import { fileURLToPath } from 'node:url';
import { runClosedLoop, type ClosedLoopResult } from '../support/closed-loop.js';
import { echoClient } from './echo-proto.js';
import { startTsxServer } from '../support/tsx-server.js';

const SERVER = fileURLToPath(new URL('./echo-server.ts', import.meta.url));

/**
 * The ceiling for unary calls on this machine: a grpc-js echo server in a child process (so client
 * and server compete for the cores as a client and a node do), called with `concurrency` in flight.
 * The payload has the size of a small JSON tell.
 */
export async function rawGrpcEcho(opts: { concurrency: number; warmupMs: number; durationMs: number }): Promise<ClosedLoopResult> {
  const child = await startTsxServer(SERVER, 'echo server');
  const client = echoClient(child.match[1]!);
  try {
    const payload = Buffer.from(JSON.stringify({ add: 1 }));
    const call = (): Promise<unknown> =>
      new Promise((resolve, reject) => {
        client.Echo({ payload }, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    return await runClosedLoop({ concurrency: opts.concurrency, warmupMs: opts.warmupMs, durationMs: opts.durationMs, op: call, latencies: true });
  } finally {
    client.close();
    await child.stop();
  }
}
