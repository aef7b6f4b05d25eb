/**
 * Child process: the receiving half of the raw stream ceiling (raw-stream.ts). Serves `cei.v1.Peer`
 * Link on a free loopback port with its own handler (none of the cluster's code), prints
 * `ready <address>`, and exits on SIGTERM. Usage: raw-stream-receiver.ts <leveldb dir>. Not a module
 * to import.
 *
 * Each "batch" frame that arrives carries messages; they are group-committed: while one synced
 * LevelDB batch is being written, the frames that arrive queue up and go into the next batch
 * together. Once a batch is durable, one "res" frame acknowledges it, with the id of the last frame in
 * it (acknowledgements are cumulative: the stream is ordered).
 */
import * as grpc from '@grpc/grpc-js';
import { Level } from 'level';
import { LINK_CHANNEL_OPTIONS, peerService, type PeerFrame, type PeerFrame__Output } from './peer-proto.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: raw-stream-receiver.ts <leveldb dir>\n');
  process.exit(2);
}

const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
await db.open();

function link(call: grpc.ServerDuplexStream<PeerFrame__Output, PeerFrame>): void {
  const pending: PeerFrame__Output[] = [];
  let writing = false;
  let ended = false;
  const commit = async (): Promise<void> => {
    writing = true;
    try {
      while (pending.length > 0) {
        const group = pending.splice(0);
        const batch = db.batch();
        // Keys shaped like a mailbox entry: actor, then the message's sequence number.
        for (const frame of group) for (const m of frame.frames) batch.put(`a\x00${m.method}\x00m\x00${m.id.padStart(16, '0')}`, m.body);
        await batch.write({ sync: true });
        call.write({ kind: 'res', id: group[group.length - 1]!.id, ok: true });
      }
    } catch (err) {
      call.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    } finally {
      writing = false;
    }
    if (ended) call.end();
  };
  call.on('data', (frame: PeerFrame__Output) => {
    pending.push(frame);
    if (!writing) void commit();
  });
  call.on('end', () => {
    ended = true;
    if (!writing) call.end();
  });
  call.on('error', () => {});
}

const server = new grpc.Server(LINK_CHANNEL_OPTIONS);
server.addService(peerService().service, { Link: link });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`raw stream receiver: cannot bind: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ready 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => void db.close().then(() => process.exit(0))));
