import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CeiClient, tellInBatches, tellMany } from '../../src/client.js';
import { publicApi } from '../../src/api/proto.js';
import type { TellRequest } from '../../src/generated/cei/v1/TellRequest.js';
import type { TellReply__Output } from '../../src/generated/cei/v1/TellReply.js';
import { removeDir, startNode, tempDir, type NodeProcess } from '../support/node-process.js';

const SLOW_ACTORS = resolve(import.meta.dirname, '../support/actors/slow.js');

function grpcCode(err: unknown): string {
  return grpc.status[(err as grpc.ServiceError).code];
}

async function expectStatus(p: Promise<unknown>, code: string, detail?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeDefined();
  expect(grpcCode(err)).toBe(code);
  if (detail) expect((err as grpc.ServiceError).details).toMatch(detail);
}

describe('public Actors API on a real node', () => {
  let dir: string;
  let node: NodeProcess;
  let client: CeiClient;

  beforeAll(async () => {
    dir = tempDir();
    node = await startNode({ dataDir: dir, args: ['--max-payload', '2048', '--actors', SLOW_ACTORS] });
    client = new CeiClient(node.address);
  });

  afterAll(async () => {
    client?.close();
    if (node) expect(await node.stop()).toBe(0);
    removeDir(dir);
  });

  it('prints the node id and the port actually bound in its ready line', () => {
    expect(node.id).toMatch(/^node-[0-9a-f]{10}$/);
    expect(node.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(node.address).not.toMatch(/:0$/);
  });

  it('spawns idempotently, tells, asks, describes, lists and stops', async () => {
    const ref = { type: 'counter', id: 'api-1' };
    const first = await client.spawn(ref, { value: 10 });
    expect(first).toMatchObject({ created: true, node: node.id });
    const again = await client.spawn(ref, { value: 99 });
    expect(again.created).toBe(false);

    const t1 = await client.tell(ref, { add: 5 });
    const t2 = await client.tell(ref, { add: 7 });
    expect(Number(t2.seq)).toBe(Number(t1.seq) + 1);
    expect(await client.ask(ref, { get: true })).toEqual({ value: 22, count: 2 });

    const info = await client.describe(ref);
    expect(info).toMatchObject({ node: node.id, status: 'active', restarts: 0 });
    expect(Number(info.mailbox_depth)).toBe(0);

    await client.spawn({ type: 'counter', id: 'api-2' });
    const listed = await client.list({ type: 'counter' });
    expect(listed.actors.map((a) => a.ref?.id)).toEqual(expect.arrayContaining(['api-1', 'api-2']));

    await client.stop(ref);
    expect((await client.describe(ref)).status).toBe('inactive');
    const after = await client.list({ type: 'counter' });
    expect(after.actors.map((a) => a.ref?.id)).not.toContain('api-1');
    // Virtual: a message to a stopped actor starts it afresh.
    await client.tell(ref, { add: 1 });
    expect(await client.ask(ref, { get: true })).toEqual({ value: 1, count: 1 });
  });

  it('pages List with a token', async () => {
    for (let i = 0; i < 5; i++) await client.spawn({ type: 'counter', id: `page-${i}` });
    const seen: string[] = [];
    let token = '';
    for (let pages = 0; pages < 20; pages++) {
      const page = await client.list({ type: 'counter', page_size: 2, page_token: token });
      expect(page.actors.length).toBeLessThanOrEqual(2);
      seen.push(...page.actors.map((a) => a.ref!.id));
      token = page.next_page_token;
      if (!token) break;
    }
    expect(seen.filter((id) => id.startsWith('page-'))).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('describes a never-used actor of a known type as inactive, an unknown type as NOT_FOUND', async () => {
    const info = await client.describe({ type: 'counter', id: 'never-used' });
    expect(info.status).toBe('inactive');
    await expectStatus(client.describe({ type: 'nosuchtype', id: 'x' }), 'NOT_FOUND', /unknown actor type "nosuchtype"/);
    await expectStatus(client.tell({ type: 'nosuchtype', id: 'x' }, { add: 1 }), 'NOT_FOUND');
  });

  it('acknowledges a repeated message_id with the original seq and does not enqueue it again', async () => {
    const ref = { type: 'counter', id: 'dedup-1' };
    const a = await client.tell(ref, { add: 3 }, 'msg-1');
    const b = await client.tell(ref, { add: 3 }, 'msg-1');
    expect(b).toEqual({ message_id: 'msg-1', seq: a.seq });
    expect(await client.ask(ref, { get: true })).toEqual({ value: 3, count: 1 });
  });

  it('answers TellStream with one reply per request, in order', async () => {
    const ref = { type: 'counter', id: 'stream-1' };
    const items = Array.from({ length: 500 }, (_, i) => ({ to: ref, payload: { add: i }, messageId: `s-${i}` }));
    const seqs = await tellMany(client.actors, items);
    expect(seqs).toHaveLength(500);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    expect(await client.ask(ref, { get: true })).toEqual({ value: (499 * 500) / 2, count: 500 });
  });

  it('sends a burst of TellStream replies in a few HTTP/2 frames, not one frame each', async () => {
    // Spoken over node:http2 directly, to see the frames grpc-js's client would hide: every request
    // in one write, then count the DATA chunks the replies come in.
    const service = publicApi().definition['cei.v1.Actors'] as protoLoader.ServiceDefinition;
    const method = service.TellStream as protoLoader.MethodDefinition<TellRequest, unknown, unknown, TellReply__Output>;
    const n = 200;
    const framed = Array.from({ length: n }, (_, i) => {
      const body = method.requestSerialize({ to: { type: 'counter', id: `frames-${i % 10}` }, payload: Buffer.from('{"add":1}'), message_id: `f-${i}` });
      const header = Buffer.alloc(5);
      header.writeUInt32BE(body.length, 1);
      return Buffer.concat([header, body]);
    });
    const session = http2.connect(`http://${node.address}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/cei.v1.Actors/TellStream', 'content-type': 'application/grpc', te: 'trailers' });
      let chunks = 0;
      let received = Buffer.alloc(0);
      stream.on('data', (d: Buffer) => {
        chunks++;
        received = Buffer.concat([received, d]);
      });
      const ended = new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      stream.end(Buffer.concat(framed));
      await ended;
      const replies: TellReply__Output[] = [];
      for (let at = 0; at < received.length; ) {
        const length = received.readUInt32BE(at + 1);
        replies.push(method.responseDeserialize(received.subarray(at + 5, at + 5 + length)));
        at += 5 + length;
      }
      expect(replies.map((r) => r.message_id)).toEqual(framed.map((_, i) => `f-${i}`));
      // One frame per reply before the replies were written together (writeInBursts).
      expect(chunks).toBeLessThan(n / 10);
    } finally {
      session.close();
    }
  });

  it('ends a TellStream at the first bad request, after the replies of the requests before it', async () => {
    const ref = { type: 'counter', id: 'stream-2' };
    const items = [
      { to: ref, payload: { add: 1 } },
      { to: ref, payload: { add: 'two' } },
      { to: ref, payload: { add: 3 } },
    ];
    const sent = tellMany(client.actors, items);
    await expectStatus(sent, 'INVALID_ARGUMENT', /finite number/);
    expect(sent.acked()).toBe(1);
  });

  it('answers TellBatches with every reply in request order, in fewer messages than tells', async () => {
    const refs = [0, 1, 2].map((i) => ({ type: 'counter', id: `batches-${i}` }));
    const items = Array.from({ length: 900 }, (_, i) => ({ to: refs[i % 3]!, payload: { add: i }, messageId: `b-${i}` }));
    const seqs = await tellInBatches(client.actors, items, { perBatch: 100, window: 300 });
    expect(seqs).toHaveLength(900);
    // Per counter the seqs count up by one, in the order sent.
    for (let i = 3; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 3]! + 1);
    for (const [c, ref] of refs.entries()) {
      const adds = items.filter((_, i) => i % 3 === c).map((it) => it.payload.add);
      expect(await client.ask(ref, { get: true })).toEqual({ value: adds.reduce((a, b) => a + b, 0), count: 300 });
    }
    // The same ids again are duplicates: the same seqs, nothing applied twice.
    expect(await tellInBatches(client.actors, items.slice(0, 10), { perBatch: 10 })).toEqual(seqs.slice(0, 10));
    expect(await client.ask(refs[0]!, { get: true })).toMatchObject({ count: 300 });
  });

  it('refuses a malformed batch whole, after the replies of the batches before it', async () => {
    const ref = { type: 'counter', id: 'batches-bad' };
    const call = client.actors.TellBatches({ deadline: Date.now() + 10_000 });
    const replies: number[] = [];
    call.on('data', (m: { replies: unknown[] }) => replies.push(m.replies.length));
    const ended = new Promise((resolve) => call.on('error', resolve));
    const tell = (add: number) => ({ to: ref, payload: Buffer.from(JSON.stringify({ add })) });
    call.write({ tells: [tell(1), tell(2)] });
    // The second tell of this batch has no ref: none of the batch's tells may be applied.
    call.write({ tells: [tell(10), { payload: Buffer.from('{"add":20}') }, tell(30)] });
    call.write({ tells: [tell(100)] });
    const err = (await ended) as grpc.ServiceError;
    expect(grpcCode(err)).toBe('INVALID_ARGUMENT');
    expect(err.details).toMatch(/tells\[1\]\.to is required/);
    expect(replies.reduce((a, b) => a + b, 0)).toBe(2);
    expect(await client.ask(ref, { get: true })).toEqual({ value: 3, count: 2 });

    const tooMany = tellInBatches(client.actors, Array.from({ length: 1001 }, () => ({ to: ref, payload: { add: 1 } })), { perBatch: 1001, window: 2000 });
    await expectStatus(tooMany, 'INVALID_ARGUMENT', /at most 1000 tells, this one 1001/);
    expect(tooMany.acked()).toBe(0);
    expect(await client.ask(ref, { get: true })).toEqual({ value: 3, count: 2 });
  });

  it('ends TellBatches at a tell its actor refuses, after the replies of the tells before it', async () => {
    const ref = { type: 'counter', id: 'batches-refused' };
    const items = [{ add: 1 }, { add: 2 }, { add: 'three' }, { add: 4 }].map((payload) => ({ to: ref, payload }));
    const sent = tellInBatches(client.actors, items, { perBatch: 4 });
    await expectStatus(sent, 'INVALID_ARGUMENT', /finite number/);
    expect(sent.acked()).toBe(2);
  });

  it('rejects bad input with INVALID_ARGUMENT and changes nothing', async () => {
    const ref = { type: 'counter', id: 'bad-1' };
    await client.tell(ref, { add: 1 });
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [client.tellRaw({ to: ref, payload: Buffer.from('{not json') }), /not valid JSON/],
      [client.tellRaw({ payload: Buffer.from('{"add":1}') }), /to is required/],
      [client.tellRaw({ to: { type: '', id: 'x' }, payload: Buffer.from('{"add":1}') }), /to\.type is required/],
      [client.tellRaw({ to: { type: 'counter', id: '' }, payload: Buffer.from('{"add":1}') }), /to\.id is required/],
      [client.tellRaw({ to: ref, payload: Buffer.alloc(0) }), /payload is required/],
      [client.tell(ref, { add: 1 }, 'x'.repeat(257)), /longer than 256 bytes/],
      [client.tell(ref, { add: Number.MAX_VALUE * 0 + 1, extra: true }), /counter accepts/],
      [client.tell(ref, { add: 'x' }), /finite number/],
      [client.tell(ref, { get: false }), /"get" must be true/],
      [client.tell(ref, { nope: 1 }), /counter accepts/],
      [client.ask(ref, [1, 2, 3]), /counter accepts/],
      [client.spawn({ type: 'counter', id: 'bad-2' }, { value: 'x' }), /init\.value must be a finite number/],
      [client.spawn({ type: 'counter', id: 'bad-2' }, { other: 1 }), /unknown init field/],
      [client.askRaw({ to: ref, payload: Buffer.from('nope') }), /not valid JSON/],
      [client.redrive(ref, [0]), /not a valid sequence number/],
      [client.list({ page_token: 'garbage!' }), /page_token/],
    ];
    for (const [call, detail] of cases) await expectStatus(call, 'INVALID_ARGUMENT', detail);
    expect(await client.ask(ref, { get: true })).toEqual({ value: 1, count: 1 });
    expect((await client.describe({ type: 'counter', id: 'bad-2' })).status).toBe('inactive');
  });

  it('rejects a payload over --max-payload naming the limit, and a message over the transport limit with RESOURCE_EXHAUSTED', async () => {
    const ref = { type: 'counter', id: 'big-1' };
    const big = { add: 1, pad: 'x'.repeat(3000) };
    await expectStatus(client.tell(ref, big), 'INVALID_ARGUMENT', /limit is 2048 bytes/);
    await expectStatus(client.tellRaw({ to: ref, payload: Buffer.alloc(5 * 1024 * 1024, 32) }), 'RESOURCE_EXHAUSTED');
    expect((await client.describe(ref)).status).toBe('inactive');
  });

  it('answers DEADLINE_EXCEEDED when an ask outlives timeout_ms, and loads types from --actors', async () => {
    const ref = { type: 'slow', id: 's1' };
    expect(await client.ask(ref, { delayMs: 1 })).toEqual({ slept: 1 });
    await expectStatus(client.ask(ref, { delayMs: 3000 }, 200), 'DEADLINE_EXCEEDED', /no answer within 200 ms/);
  });

  it('serves grpc.health.v1 (SERVING) and server reflection', async () => {
    const healthDef = protoLoader.loadSync(resolve(import.meta.dirname, '../../node_modules/grpc-health-check/proto/health/v1/health.proto'), { enums: String });
    const Health = (grpc.loadPackageDefinition(healthDef) as any).grpc.health.v1.Health;
    const health = new Health(node.address, grpc.credentials.createInsecure());
    const reply = await new Promise<{ status: string }>((res, rej) => health.Check({ service: '' }, (e: Error | null, r: { status: string }) => (e ? rej(e) : res(r))));
    expect(reply.status).toBe('SERVING');
    health.close();

    const reflDef = protoLoader.loadSync(resolve(import.meta.dirname, '../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'), { keepCase: true });
    const Reflection = (grpc.loadPackageDefinition(reflDef) as any).grpc.reflection.v1.ServerReflection;
    const reflection = new Reflection(node.address, grpc.credentials.createInsecure());
    const names = await new Promise<string[]>((res, rej) => {
      const call = reflection.ServerReflectionInfo({ deadline: Date.now() + 10_000 });
      call.on('data', (r: any) => {
        res(r.list_services_response.service.map((s: { name: string }) => s.name));
        call.end();
      });
      call.on('error', rej);
      call.write({ list_services: '*' });
    });
    expect(names).toContain('cei.v1.Actors');
    reflection.close();
  });
});

describe('node lifecycle', () => {
  it('exits 0 on SIGTERM and keeps acknowledged state across a restart on the same data directory', async () => {
    const dir = tempDir();
    try {
      const first = await startNode({ dataDir: dir });
      const c1 = new CeiClient(first.address);
      for (let i = 0; i < 20; i++) await c1.tell({ type: 'counter', id: 'keep' }, { add: 2 });
      c1.close();
      expect(await first.stop()).toBe(0);

      const second = await startNode({ dataDir: dir });
      expect(second.id).toBe(first.id);
      const c2 = new CeiClient(second.address);
      expect(await c2.ask({ type: 'counter', id: 'keep' }, { get: true })).toEqual({ value: 40, count: 20 });
      c2.close();
      expect(await second.stop()).toBe(0);
    } finally {
      removeDir(dir);
    }
  });

  it('refuses a data directory locked by another node, with a clear message', async () => {
    const dir = tempDir();
    try {
      const first = await startNode({ dataDir: dir });
      const second = startNode({ dataDir: dir });
      await expect(second).rejects.toThrow(/in use by another process/);
      expect(await first.stop()).toBe(0);
    } finally {
      removeDir(dir);
    }
  });
});

describe('data directory checks', () => {
  it('refuses a corrupt store with a clear message and leaves its files untouched', async () => {
    const { mkdirSync, writeFileSync, readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = tempDir();
    try {
      mkdirSync(join(dir, 'db'));
      writeFileSync(join(dir, 'db', 'CURRENT'), 'MANIFEST-000099\n');
      writeFileSync(join(dir, 'db', 'MANIFEST-000099'), 'this is not a manifest');
      const before = readdirSync(join(dir, 'db')).sort();
      await expect(startNode({ dataDir: dir })).rejects.toThrow(/data directory .* (is corrupt|cannot open)/);
      expect(readdirSync(join(dir, 'db')).sort()).toEqual(expect.arrayContaining(before));
      expect(readFileSync(join(dir, 'db', 'MANIFEST-000099'), 'utf8')).toBe('this is not a manifest');
    } finally {
      removeDir(dir);
    }
  });
});
