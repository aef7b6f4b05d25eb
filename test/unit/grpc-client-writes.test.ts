import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';

// patches/@grpc+grpc-js+*.patch: grpc-js's client handed a stream's messages to HTTP/2 one write
// completion at a time, so each message cost a DATA frame, a socket write and a turn of the event
// loop on both sides. These tests speak to a bare node:http2 server, which sees the frames that a
// grpc-js server would hide.

interface FrameCount {
  address: string;
  /** DATA chunks and the messages in them, per stream, in arrival order. */
  streams: Array<{ chunks: number; messages: string[] }>;
  close: () => Promise<void>;
}

/** Answers every call with OK once the client half-closes, counting what it received. */
async function frameCountingServer(): Promise<FrameCount> {
  const server = http2.createServer();
  const streams: FrameCount['streams'] = [];
  server.on('stream', (stream) => {
    const seen = { chunks: 0, messages: [] as string[] };
    streams.push(seen);
    let pending = Buffer.alloc(0);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
    stream.on('data', (chunk: Buffer) => {
      seen.chunks++;
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const length = pending.readUInt32BE(1);
        seen.messages.push(pending.subarray(5, 5 + length).toString());
        pending = pending.subarray(5 + length);
      }
    });
    stream.on('end', () => stream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const asText = {
  serialize: (s: string) => Buffer.from(s),
  deserialize: (b: Buffer) => b.toString(),
};

/** Writes `n` messages on one client stream at once and waits for the call's status. */
async function writeAll(client: grpc.Client, n: number): Promise<grpc.StatusObject> {
  const call = client.makeClientStreamRequest('/test.Frames/Send', asText.serialize, asText.deserialize, () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  for (let i = 0; i < n; i++) call.write(`message-${i}`);
  call.end();
  return status;
}

describe('grpc-js client streams (patched)', () => {
  let server: FrameCount | undefined;
  let client: grpc.Client | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close();
    client = server = undefined;
  });

  it('send a burst of messages in a few DATA frames, in order, from a channel that was not connected yet', async () => {
    server = await frameCountingServer();
    // The messages are written before the channel has connected or picked a subchannel, which the
    // patch must live through without losing one.
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    const n = 500;
    const status = await writeAll(client, n);
    expect(status.code).toBe(grpc.status.OK);
    expect(server.streams).toHaveLength(1);
    const [seen] = server.streams;
    expect(seen!.messages).toEqual(Array.from({ length: n }, (_, i) => `message-${i}`));
    // Unpatched: one DATA frame per message (500).
    expect(seen!.chunks).toBeLessThan(n / 10);
  });

  it('keep every message of many streams opened at once on one channel', async () => {
    server = await frameCountingServer();
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    const statuses = await Promise.all(Array.from({ length: 8 }, () => writeAll(client!, 300)));
    expect(statuses.map((s) => s.code)).toEqual(statuses.map(() => grpc.status.OK));
    expect(server.streams).toHaveLength(8);
    for (const seen of server.streams) expect(seen.messages).toEqual(Array.from({ length: 300 }, (_, i) => `message-${i}`));
  });
});
