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
  /** Lets a `paused` server read what it held back. */
  resume: () => void;
  close: () => Promise<void>;
}

/**
 * Answers every call with OK once the client half-closes, counting what it received. With `paused`,
 * it reads nothing until `resume()`, so the client's writes meet HTTP/2 flow control.
 */
async function frameCountingServer(opts: { paused?: boolean } = {}): Promise<FrameCount> {
  const server = http2.createServer();
  const held: http2.ServerHttp2Stream[] = [];
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
    if (opts.paused) {
      stream.pause();
      held.push(stream);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    resume: () => {
      for (const stream of held.splice(0)) stream.resume();
    },
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

  it('still hold a writer back once the peer stops reading', async () => {
    server = await frameCountingServer({ paused: true });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    const call = client.makeClientStreamRequest('/test.Frames/Send', asText.serialize, asText.deserialize, () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    // Writes as fast as the stream lets it, until a 'drain' does not come within a second or far
    // more went in than grpc-js's 1 MiB per-call retry buffer allows (it stalls at 1 MiB here).
    // Handed over without that buffer's accounting, every write would drain.
    const body = 'x'.repeat(16 * 1024);
    const limit = 16 * 1024 * 1024;
    let written = 0;
    let stalled = false;
    while (!stalled && written < limit) {
      let more = true;
      while (more && written < limit) {
        more = call.write(`${written}:${body}`);
        written += body.length;
      }
      if (more) break;
      stalled = await Promise.race([
        new Promise<boolean>((resolve) => call.once('drain', () => resolve(false))),
        new Promise<boolean>((resolve) => setTimeout(resolve, 1_000, true)),
      ]);
    }
    expect(stalled).toBe(true);
    expect(written).toBeLessThan(limit);
    // Nothing is lost on the way: once the server reads, every message arrives, in order.
    server.resume();
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
    const messages = server.streams[0]!.messages;
    expect(messages).toHaveLength(written / body.length);
    expect(messages.every((m, i) => m === `${i * body.length}:${body}`)).toBe(true);
  });
});
