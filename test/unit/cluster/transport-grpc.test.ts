import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { CeiError, DeadlineExceededError, NotFoundError, UnavailableError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { MemberRole } from '../../../src/cluster/membership.js';
import type { Link, LinkHandler, PeerInfo } from '../../../src/cluster/transport.js';
import { TRANSPORT_TEST_PRESET, type PeerLink } from '../../../src/cluster/transport-core.js';
import type { Http2Session } from 'node:http2';
import { GrpcTransport, PEER_CHANNEL_OPTIONS, PEER_FLOW_CONTROL_WINDOW, raiseReceiveWindow, type GrpcTransportOptions } from '../../../src/cluster/transport-grpc.js';
import { peerApi } from '../../../src/api/proto.js';
import { waitFor, within } from '../../support/wait.js';

/** A LinkHandler that records what the transport tells it and answers requests through `answer`. */
class Recorder implements LinkHandler {
  readonly events: string[] = [];
  readonly messages: Array<{ from: string; method: string; body: unknown }> = [];
  readonly downAt = new Map<string, number>();
  answer: (method: string, body: unknown) => unknown = (method, body) => ({ echo: body, method });

  onLinkUp(link: Link): void {
    this.events.push(`up ${link.peer.id}`);
  }
  onLinkDown(link: Link): void {
    this.events.push(`down ${link.peer.id}`);
    this.downAt.set(link.peer.id, performance.now());
  }
  onMessage(link: Link, method: string, body: unknown): void {
    this.messages.push({ from: link.peer.id, method, body });
  }
  async onRequest(_link: Link, method: string, body: unknown): Promise<unknown> {
    return this.answer(method, body);
  }
}

interface TestNode {
  info: PeerInfo;
  port: number;
  server: grpc.Server;
  transport: GrpcTransport;
  rec: Recorder;
}

const running: TestNode[] = [];

afterEach(async () => {
  for (const n of running.splice(0)) {
    await n.transport.stop();
    n.server.forceShutdown();
  }
});

/** A node's server as src/api/server.ts makes it (same keepalive settings), serving only the Peer service. */
async function bindServer(transport: GrpcTransport, port: number): Promise<[grpc.Server, number]> {
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  transport.addToServer(server);
  const bound = await new Promise<number>((res, rej) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? rej(err) : res(p))),
  );
  return [server, bound];
}

async function startNode(
  id: string,
  opts: { port?: number; incarnation?: number; role?: MemberRole; options?: GrpcTransportOptions; start?: boolean } = {},
): Promise<TestNode> {
  const transport = new GrpcTransport({ ...TRANSPORT_TEST_PRESET, ...opts.options });
  const [server, port] = await bindServer(transport, opts.port ?? 0);
  const info: PeerInfo = { id, address: `127.0.0.1:${port}`, role: opts.role ?? 'control', incarnation: opts.incarnation ?? 1 };
  const rec = new Recorder();
  if (opts.start !== false) transport.start(info, rec);
  const n = { info, port, server, transport, rec };
  running.push(n);
  return n;
}

async function linked(a: TestNode, b: TestNode, timeoutMs = 5_000): Promise<Link> {
  const link = await waitFor(() => a.transport.link(b.info.id), { what: `${a.info.id} linked to ${b.info.id}`, timeoutMs });
  return link!;
}

async function pair(options: GrpcTransportOptions = {}): Promise<[TestNode, TestNode, Link, Link]> {
  const a = await startNode('n1', { role: 'bootstrap', options });
  const b = await startNode('n2', { options });
  a.transport.dial(b.info.address);
  return [a, b, await linked(a, b), await linked(b, a)];
}

function same(x: Link | undefined, y: Link | undefined): boolean {
  const a = x as PeerLink | undefined;
  const b = y as PeerLink | undefined;
  return a !== undefined && b !== undefined && a.direction !== b.direction && a.nonce === b.nonce;
}

describe('GrpcTransport: links over real gRPC', () => {
  it('exchanges hellos: the link is up on both ends with the other side PeerInfo', async () => {
    const [a, b, ab, ba] = await pair();
    // The hello also says the transport takes raw bodies (repl-codec.ts).
    expect(ab.peer).toEqual({ ...b.info, rawBodies: true, rawTells: true });
    expect(ba.peer).toEqual({ ...a.info, rawBodies: true, rawTells: true });
    expect(same(ab, ba)).toBe(true);
    expect((ab as PeerLink).direction).toBe('out');
    expect(a.rec.events).toEqual(['up n2']);
    expect(b.rec.events).toEqual(['up n1']);
  });

  it('carries messages in order both ways, and requests with their answers and remote errors', async () => {
    const [a, b, ab, ba] = await pair();
    for (let i = 0; i < 100; i++) ab.send('m', { i });
    ba.send('back', null);
    ab.send('none', undefined);
    await waitFor(() => b.rec.messages.length === 101 && a.rec.messages.length === 1);
    expect(b.rec.messages.slice(0, 100).map((m) => (m.body as { i: number }).i)).toEqual([...Array(100).keys()]);
    expect(b.rec.messages[100]).toEqual({ from: 'n1', method: 'none', body: undefined });
    expect(a.rec.messages).toEqual([{ from: 'n2', method: 'back', body: null }]);

    expect(await ab.request('echo', { x: [1, 'two'] }, 2_000)).toEqual({ echo: { x: [1, 'two'] }, method: 'echo' });
    b.rec.answer = (method) => {
      if (method === 'missing') throw new NotFoundError('no such actor counter/x');
      if (method === 'busy') throw new UnavailableError('fenced');
      if (method === 'bug') throw new Error('oops');
      return undefined;
    };
    const missing = await ab.request('missing', null, 2_000).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ code: 'NOT_FOUND', message: 'no such actor counter/x' });
    await expect(ab.request('busy', null, 2_000)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'fenced', retryable: true });
    const bug = await ab.request('bug', null, 2_000).catch((e: unknown) => e);
    expect(bug).toBeInstanceOf(CeiError);
    expect(bug).toMatchObject({ code: 'INTERNAL', message: 'oops' });
    expect(await ab.request('nothing', null, 2_000)).toBeUndefined();
    // Requests go both ways on the one link.
    a.rec.answer = () => 'from n1';
    expect(await ba.request('q', null, 2_000)).toBe('from n1');
    // A Buffer body travels as its bytes, not as JSON, and arrives as a Buffer.
    b.rec.answer = (_method, body) => Buffer.isBuffer(body) && body.toString('utf16le');
    expect(await ab.request('raw', Buffer.from('a\x00"é', 'utf16le'), 2_000)).toBe('a\x00"é');
  });

  it('20,000 sends arrive in order, each once, while requests interleave', async () => {
    const [, b, ab] = await pair();
    const n = 20_000;
    const answers: Array<Promise<unknown>> = [];
    for (let i = 0; i < n; i++) {
      ab.send('seq', { i, pad: 'x'.repeat(32) });
      if (i % 1_000 === 0) answers.push(ab.request('echo', i, 10_000));
    }
    await waitFor(() => b.rec.messages.length >= n, { what: `${n} frames delivered`, timeoutMs: 20_000 });
    const seen = b.rec.messages.map((m) => (m.body as { i: number }).i);
    expect(seen).toHaveLength(n);
    expect(seen.every((v, i) => v === i)).toBe(true);
    expect(await Promise.all(answers)).toEqual(Array.from({ length: n / 1_000 }, (_, k) => ({ echo: k * 1_000, method: 'echo' })));
  });

  it('frames bigger than a batch go alone, and everything stays in order (a gRPC server takes 4 MiB a message by default)', async () => {
    const [, b, ab] = await pair();
    const big = 'b'.repeat(1_500_000);
    for (let i = 0; i < 30; i++) ab.send('m', i % 10 === 5 ? { i, big } : { i });
    await waitFor(() => b.rec.messages.length === 30, { what: '30 frames', timeoutMs: 10_000 });
    expect(b.rec.messages.map((m) => (m.body as { i: number }).i)).toEqual([...Array(30).keys()]);
    expect((b.rec.messages[15]!.body as { big: string }).big).toHaveLength(1_500_000);
    expect(ab.open).toBe(true);
  });

  it('a Link call has a receive window of PEER_FLOW_CONTROL_WINDOW each way, not HTTP/2\'s 64 KiB', async () => {
    // A server with the Peer service alone, whose Link handler raises its session's window as the
    // transport's does, and a client with the transport's channel options.
    let session: Http2Session | undefined;
    const server = new grpc.Server();
    server.addService(peerApi().peer.cei.v1.Peer.service, {
      Link: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        session = raiseReceiveWindow(call);
        call.on('data', () => {});
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? rej(err) : res(p))));
    const client = new (peerApi().peer.cei.v1.Peer)(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), PEER_CHANNEL_OPTIONS);
    const call = client.Link();
    call.on('error', () => {});
    try {
      call.write({ kind: 'hello', id: 1, method: '', body: Buffer.alloc(0) });
      await waitFor(() => session, { what: 'the Link call to reach the server' });
      // What this side lets the client send, and what the client lets this side send.
      // Windows shrink by what has arrived and not yet been acknowledged (the hello here).
      await waitFor(() => session!.state.localWindowSize! >= PEER_FLOW_CONTROL_WINDOW - 1_024, { what: 'our connection window' });
      await waitFor(() => session!.localSettings.initialWindowSize === PEER_FLOW_CONTROL_WINDOW, { what: 'our stream window, acknowledged' });
      await waitFor(() => session!.remoteSettings.initialWindowSize === PEER_FLOW_CONTROL_WINDOW, { what: "the client's stream window" });
      await waitFor(() => session!.state.remoteWindowSize! >= PEER_FLOW_CONTROL_WINDOW - 1_024, { what: "the client's connection window" });
    } finally {
      call.cancel();
      client.close();
      server.forceShutdown();
    }
  });

  it('times out a request on the injected clock with DeadlineExceededError', async () => {
    const clock = new FakeClock();
    const [, b, ab] = await pair({ clock });
    let release: ((v: unknown) => void) | undefined;
    b.rec.answer = () => new Promise((r) => (release = r));
    const outcome = ab.request('slow', null, 10).catch((e: unknown) => e);
    await waitFor(() => release, { what: 'the request reached n2' });
    clock.advance(10);
    const err = await within(outcome, 'timed-out request');
    expect(err).toBeInstanceOf(DeadlineExceededError);
    // The late answer comes back before the next one (frames are ordered) and is dropped.
    release!('late');
    b.rec.answer = (m) => m;
    expect(await within(ab.request('again', null, 10_000), 'next request')).toBe('again');
    expect((ab as PeerLink).pendingRequests).toBe(0);
  });

  it('links three nodes that all dial each other with one link per pair, dialed by the smaller id', async () => {
    const nodes = [await startNode('n1'), await startNode('n2'), await startNode('n3')];
    for (const x of nodes) for (const y of nodes) if (x !== y) x.transport.dial(y.info.address);
    await waitFor(() => nodes.every((n) => n.transport.links().length === 2), { what: 'full mesh' });
    await waitFor(() =>
      nodes.every((x) =>
        x.transport.links().every((l) => same(l, nodes.find((y) => y.info.id === l.peer.id)!.transport.link(x.info.id)) && (l as PeerLink).direction === (x.info.id < l.peer.id ? 'out' : 'in')),
      ),
    { what: 'links kept by the rule on both ends' });
    for (const x of nodes) {
      const ups = x.rec.events.filter((e) => e.startsWith('up')).length;
      const downs = x.rec.events.filter((e) => e.startsWith('down')).length;
      expect(ups - downs).toBe(2);
    }
  });

  it('two addresses of one node end up as one link (the later dial wins on both ends)', async () => {
    const [a, b] = await pair();
    a.transport.dial(`localhost:${b.port}`);
    // The second dial links, replaces the first link on both ends, and the first dialer then waits.
    await waitFor(() => a.rec.events.length === 3 && b.rec.events.length === 3, { what: 'the replacement' });
    expect(a.rec.events).toEqual(['up n2', 'down n2', 'up n2']);
    expect(b.rec.events).toEqual(['up n1', 'down n1', 'up n1']);
    expect(same(a.transport.link('n2'), b.transport.link('n1'))).toBe(true);
    expect(await a.transport.link('n2')!.request('x', 1, 2_000)).toEqual({ echo: 1, method: 'x' });
  });

  it('ignores a dial of its own address and stops dialing it', async () => {
    const a = await startNode('n1');
    const b = await startNode('n2');
    a.transport.dial(a.info.address);
    a.transport.dial(b.info.address);
    await linked(a, b);
    expect(a.transport.links().map((l) => l.peer.id)).toEqual(['n2']);
    // A second node dialing n1 still links fine (the self-link did not disturb the server side).
    const c = await startNode('n3');
    c.transport.dial(a.info.address);
    await linked(c, a);
    expect(a.rec.events.sort()).toEqual(['up n2', 'up n3']);
  });

  it('refuses links until started; the dialer keeps trying and links once the peer starts', async () => {
    const failures: string[] = [];
    const log = { ...silentLogger, debug: (obj: object, msg?: string) => void (msg === 'peer link attempt failed' && failures.push(JSON.stringify(obj))) };
    const a = await startNode('n1', { options: { log } });
    const b = await startNode('n2', { start: false });
    a.transport.dial(b.info.address);
    // Refused attempts back off and retry; none links.
    await waitFor(() => failures.length >= 3, { what: 'three refused attempts' });
    expect(failures[0]).toMatch(/not accepting peer links/);
    expect(a.transport.links()).toEqual([]);
    b.transport.start(b.info, b.rec);
    await linked(a, b);
    expect(b.rec.events).toEqual(['up n1']);
  });
});

describe('GrpcTransport: failures', () => {
  it('a peer that stops is seen down quickly, pending requests reject, and the dialer relinks when it is back on its port', async () => {
    const [a, b, ab] = await pair();
    let received = false;
    b.rec.answer = () => new Promise(() => (received = true));
    const pending = ab.request('never', null, 60_000).catch((e: unknown) => e);
    await waitFor(() => received, { what: 'the request reached n2' });
    const stoppedAt = performance.now();
    b.server.forceShutdown();
    // Far less than any keepalive timeout: the connection reset is seen at once.
    await waitFor(() => a.transport.link('n2') === undefined, { what: 'n1 sees the link down', timeoutMs: 2_000 });
    const err = await within(pending, 'pending request', 2_000);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    expect(a.rec.downAt.get('n2')! - stoppedAt).toBeLessThan(2_000);
    await b.transport.stop();

    // The same node restarts on the same port (a new process would have a newer incarnation).
    const b2 = await startNode('n2', { port: b.port, incarnation: 2 });
    const link = await linked(a, b2, 10_000);
    expect(link.peer.incarnation).toBe(2);
    expect(await link.request('echo', 'hi', 2_000)).toEqual({ echo: 'hi', method: 'echo' });
    expect(a.rec.events).toEqual(['up n2', 'down n2', 'up n2']);
  });

  it.each(['this node dialed', 'the peer dialed'])('a peer process killed with SIGKILL is seen down within milliseconds (%s)', async (who) => {
    const a = await startNode('n1');
    const peer = await spawnPeer('n9', who === 'the peer dialed' ? a.info.address : undefined);
    try {
      if (who === 'this node dialed') a.transport.dial(peer.address);
      const link = await waitFor(() => a.transport.link('n9'), { what: 'linked to the child process', timeoutMs: 10_000 });
      expect((link as PeerLink).direction).toBe(who === 'this node dialed' ? 'out' : 'in');
      const killedAt = performance.now();
      peer.proc.kill('SIGKILL');
      await waitFor(() => a.transport.link('n9') === undefined, { what: 'link down after SIGKILL', timeoutMs: 2_000 });
      expect(a.rec.downAt.get('n9')! - killedAt).toBeLessThan(2_000); // in practice ~10 ms; keepalive would take 15 s
    } finally {
      peer.proc.kill('SIGKILL');
    }
  });

  it('stop closes every link (reported down on both ends) and the peer redials a restarted node', async () => {
    const [a, b] = await pair();
    b.transport.dial(a.info.address); // b dials too: covered by the link n1 dialed
    await a.transport.stop();
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    await waitFor(() => b.rec.events.length === 2);
    expect(b.rec.events).toEqual(['up n1', 'down n1']);
    a.server.forceShutdown();
    const a2 = await startNode('n1', { port: a.port, incarnation: 2 });
    const link = await linked(b, a2, 10_000);
    expect(link.peer.incarnation).toBe(2);
  });
});

describe('GrpcTransport: misbehaving peers', () => {
  /** A Peer service that does what `behave` says with each Link call, instead of a transport. */
  async function fakePeer(behave: (call: grpc.ServerDuplexStream<unknown, unknown>) => void): Promise<{ address: string; calls: () => number }> {
    const server = new grpc.Server();
    let calls = 0;
    server.addService(peerApi().peer.cei.v1.Peer.service, {
      Link: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        calls++;
        call.on('error', () => {});
        behave(call);
      },
    });
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? rej(err) : res(p))),
    );
    fakes.push(server);
    return { address: `127.0.0.1:${port}`, calls: () => calls };
  }
  const fakes: grpc.Server[] = [];
  afterEach(() => {
    for (const f of fakes.splice(0)) f.forceShutdown();
  });

  const fakeInfo = { id: 'fake', address: 'x', role: 'worker', incarnation: 1 };
  const hello = (body: unknown, kind = 'hello'): unknown => ({ kind, body: Buffer.from(JSON.stringify(body)) });

  it.each([
    ['never answers the hello', () => {}],
    ['answers with a hello that is not a PeerInfo', (call: grpc.ServerDuplexStream<unknown, unknown>) => call.write(hello({ id: 7 }))],
    ['sends a message before its hello', (call: grpc.ServerDuplexStream<unknown, unknown>) => call.write(hello(fakeInfo, 'msg'))],
  ])('a peer that %s is dropped and redialed, never linked', async (_what, behave) => {
    const peer = await fakePeer(behave);
    const a = await startNode('n1', { options: { helloTimeoutMs: 100 } });
    a.transport.dial(peer.address);
    await waitFor(() => peer.calls() >= 3, { what: 'three attempts' });
    expect(a.transport.links()).toEqual([]);
    expect(a.rec.events).toEqual([]);
  });

  it.each([[{ maxBufferedFrames: 2_000 }], [{ maxBufferedBytes: 2 * 1024 * 1024 }]])('a peer that stops reading is dropped once too much waits (%o), instead of buffering without bound', async (limits) => {
    const peer = await fakePeer((call) => {
      call.once('data', () => {
        call.write(hello({ ...fakeInfo, address: 'fake' }));
        call.pause(); // reads nothing more: HTTP/2 flow control stops our writes
      });
    });
    const a = await startNode('n1', { options: limits });
    a.transport.dial(peer.address);
    const link = await waitFor(() => a.transport.link('fake'));
    const pending = link!.request('never', null, 60_000).catch((e: unknown) => e);
    const body = { pad: 'x'.repeat(1_000) };
    let sent = 0;
    while (link!.open && sent < 1_000_000) {
      for (let i = 0; i < 1_000; i++) link!.send('m', body);
      sent += 1_000;
      await new Promise((r) => setImmediate(r));
    }
    expect(link!.open).toBe(false);
    expect(await pending).toBeInstanceOf(UnavailableError);
    expect(a.rec.events).toEqual(['up fake', 'down fake']);
    // What was accepted before the drop is bounded by the window plus maxBufferedFrames, not by what we tried.
    expect(sent).toBeLessThan(100_000);
  });
});

/** A GrpcTransport node in a child process, for a real SIGKILL. */
async function spawnPeer(id: string, dial?: string): Promise<{ proc: ReturnType<typeof spawn>; address: string }> {
  const module = pathToFileURL(resolve(import.meta.dirname, '../../../src/cluster/transport-grpc.ts')).href;
  const script = `
    import * as grpc from '@grpc/grpc-js';
    import { GrpcTransport } from ${JSON.stringify(module)};
    const transport = new GrpcTransport();
    const server = new grpc.Server();
    transport.addToServer(server);
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) throw err;
      const handler = { onLinkUp() {}, onLinkDown() {}, onMessage() {}, async onRequest() { return null; } };
      transport.start({ id: ${JSON.stringify(id)}, address: '127.0.0.1:' + port, role: 'worker', incarnation: 1 }, handler);
      const dial = ${JSON.stringify(dial ?? null)};
      if (dial) transport.dial(dial);
      console.log('ready 127.0.0.1:' + port);
    });
  `;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: resolve(import.meta.dirname, '../../..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const address = await within(
    new Promise<string>((res, rej) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const m = /^ready (\S+)$/.exec(line);
        if (m) res(m[1]!);
      });
      proc.on('exit', (code) => rej(new Error(`peer process exited with ${code}: ${stderr}`)));
    }),
    'peer process ready',
    20_000,
  );
  return { proc, address };
}
