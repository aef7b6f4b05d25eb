import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamsClient } from '../../src/client-streams.js';
import type { StreamEntry } from '../../src/actors/stream.js';
import { removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { within } from '../support/wait.js';
import { failureOf } from '../support/grpc-status.js';

/** The first `n` messages of a subscription, then closes it. */
async function take(client: StreamsClient, stream: string, subscription: string, n: number, from: 'earliest' | 'latest' | number = 'earliest'): Promise<StreamEntry[]> {
  const sub = client.subscribe(stream, subscription, { from });
  const got: StreamEntry[] = [];
  try {
    await within(
      (async () => {
        for await (const m of sub.messages) {
          got.push(m);
          if (got.length >= n) break;
        }
      })(),
      `${n} messages from ${stream}/${subscription}`,
      10_000,
    );
  } finally {
    sub.close();
  }
  return got;
}

describe('the Streams service on a real node', () => {
  let dir: string;
  let node: NodeProcess;
  let client: StreamsClient;

  beforeAll(async () => {
    dir = tempDir();
    node = await startNode({ dataDir: dir });
    client = new StreamsClient(node.address);
  });

  afterAll(async () => {
    client?.close();
    if (node) expect(await node.stop()).toBe(0);
    removeDir(dir);
  });

  it('publishes, delivers in order to a subscription as more arrive, and moves its cursor by acks only', async () => {
    expect(await client.publish('temps', [{ t: 1 }, { t: 2 }], { times: [1000, 2000] })).toEqual({ first: 0, last: 1, duplicate: false });
    const sub = client.subscribe('temps', 'reader', { from: 'earliest' });
    const got: StreamEntry[] = [];
    const reading = (async () => {
      for await (const m of sub.messages) {
        got.push(m);
        if (got.length === 4) break;
      }
    })();
    // Published while the subscription is open: delivered without asking again.
    await client.publish('temps', [{ t: 3 }, { t: 4 }]);
    await within(reading, 'four messages', 10_000);
    sub.close();
    expect(got.map((m) => [m.offset, m.data])).toEqual([
      [0, { t: 1 }],
      [1, { t: 2 }],
      [2, { t: 3 }],
      [3, { t: 4 }],
    ]);
    expect(got[1]!.time).toBe(2000);
    // Nothing was acknowledged: a new call delivers from the cursor again (at least once).
    expect((await take(client, 'temps', 'reader', 1)).map((m) => m.offset)).toEqual([0]);
    expect(await client.ack('temps', 'reader', 2, { sum: 6 })).toBe(3);
    expect((await take(client, 'temps', 'reader', 1)).map((m) => m.offset)).toEqual([3]);
    const d = await client.describe('temps');
    expect(d).toMatchObject({ name: 'temps', head: 4, first: 0 });
    expect(d.subscriptions).toEqual([{ name: 'reader', cursor: 3, queueLength: 1, hasCheckpoint: true, skipped: 0 }]);
    expect((await client.list()).map((s) => s.name)).toContain('temps');
  });

  it('drops a producer publish that is not newer, recognises a retried message id, and applies retention', async () => {
    expect((await client.publish('out', [1], { producer: 'avg', seq: 5 })).duplicate).toBe(false);
    expect((await client.publish('out', [1], { producer: 'avg', seq: 5 })).duplicate).toBe(true);
    expect((await client.publish('out', [2], { messageId: 'call-1' })).duplicate).toBe(false);
    expect((await client.publish('out', [2], { messageId: 'call-1' })).duplicate).toBe(true);
    const d = await client.describe('out');
    expect(d.head).toBe(2);
    expect(d.producers).toEqual({ avg: 5 });
    const kept = await client.configure('out', { maxCount: 1 });
    expect([kept.first, kept.head, kept.retention]).toEqual([1, 2, { maxCount: 1 }]);
  });

  it('answers bad input with INVALID_ARGUMENT, NOT_FOUND or FAILED_PRECONDITION and changes nothing', async () => {
    expect(await failureOf(client.publish('bad name!', [1]))).toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^stream:/) });
    expect(await failureOf(client.publish('temps', []))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await failureOf(client.publish('temps', [1], { times: [1, 2] }))).toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringMatching(/times_ms/) });
    expect(await failureOf(client.describe('never-made'))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await failureOf(client.ack('temps', 'nobody', 0))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await failureOf(client.ack('temps', 'reader', 99))).toMatchObject({ code: 'FAILED_PRECONDITION', details: expect.stringMatching(/ends at 3/) });
    const sub = client.subscribe('temps', 'bad name!');
    expect(await failureOf((async () => { for await (const _ of sub.messages) return; })())).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await client.describe('temps')).head).toBe(4);
  });

  it('works from the CLI: publish from stdin and arguments, tail, describe and list with --json', async () => {
    const at = ['--node', node.address];
    const stdin = await runCli(['stream', 'publish', 'cli', ...at], 20_000, '{"v": 1}\n\n{"v": 2}\n');
    expect(stdin).toMatchObject({ code: 0, stdout: 'cli: published 2 at offsets 0..1\n' });
    expect((await runCli(['stream', 'publish', 'cli', '{"v": 3}', ...at])).code).toBe(0);
    const tail = await runCli(['stream', 'tail', 'cli', '--from', 'earliest', '--count', '3', '--json', ...at]);
    expect(tail.code).toBe(0);
    expect(tail.stdout.trim().split('\n').map((l) => (JSON.parse(l) as StreamEntry).data)).toEqual([{ v: 1 }, { v: 2 }, { v: 3 }]);
    // The temporary subscription of tail is gone again.
    const described = await runCli(['stream', 'describe', 'cli', '--json', ...at]);
    expect(JSON.parse(described.stdout)).toMatchObject({ head: 3, subscriptions: [] });
    const listed = await runCli(['stream', 'list', '--json', ...at]);
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((s) => s.name)).toEqual(expect.arrayContaining(['cli', 'temps']));
    const bad = await runCli(['stream', 'publish', 'cli', '{not json', ...at]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/message 1 is not valid JSON/);
    const missing = await runCli(['stream', 'describe', 'nope', ...at]);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringMatching(/NOT_FOUND/) });
  });
});
