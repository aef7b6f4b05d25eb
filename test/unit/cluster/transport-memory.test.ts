import { afterEach, describe, expect, it } from 'vitest';
import { CeiError, DeadlineExceededError, InvalidArgumentError, NotFoundError, UnavailableError } from '../../../src/errors.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import type { MemberRole } from '../../../src/cluster/membership.js';
import type { Link, LinkHandler, PeerInfo } from '../../../src/cluster/transport.js';
import { TRANSPORT_TEST_PRESET, type PeerLink, type TransportOptions } from '../../../src/cluster/transport-core.js';
import { MemoryNetwork, type MemoryTransport } from '../../../src/cluster/transport-memory.js';
import { pick, randomInt, seededRandom } from '../../support/seeded-random.js';
import { waitFor, within } from '../../support/wait.js';

/** A LinkHandler that records what the transport tells it and answers requests through `answer`. */
class Recorder implements LinkHandler {
  readonly events: string[] = [];
  readonly messages: Array<{ from: string; method: string; body: unknown }> = [];
  readonly ups: Link[] = [];
  readonly downs: Link[] = [];
  answer: (method: string, body: unknown, link: Link) => unknown = (method, body) => ({ echo: body, method });

  onLinkUp(link: Link): void {
    this.events.push(`up ${link.peer.id}`);
    this.ups.push(link);
  }
  onLinkDown(link: Link): void {
    this.events.push(`down ${link.peer.id}`);
    this.downs.push(link);
  }
  onMessage(link: Link, method: string, body: unknown): void {
    this.messages.push({ from: link.peer.id, method, body });
  }
  async onRequest(link: Link, method: string, body: unknown): Promise<unknown> {
    return this.answer(method, body, link);
  }
}

interface TestNode {
  info: PeerInfo;
  transport: MemoryTransport;
  rec: Recorder;
}

const networks: MemoryNetwork[] = [];
const transports: MemoryTransport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.stop()));
  networks.splice(0);
});

function network(): MemoryNetwork {
  const n = new MemoryNetwork();
  networks.push(n);
  return n;
}

function node(net: MemoryNetwork, id: string, options: Partial<TransportOptions> = {}, role: MemberRole = 'control', incarnation = 1): TestNode {
  const info: PeerInfo = { id, address: id, role, incarnation };
  const transport = net.transport({ ...TRANSPORT_TEST_PRESET, ...options });
  const rec = new Recorder();
  transport.start(info, rec);
  transports.push(transport);
  return { info, transport, rec };
}

/** The link `a` holds to `b`, once it is up. */
async function linked(a: TestNode, b: TestNode): Promise<Link> {
  const link = await waitFor(() => a.transport.link(b.info.id), { what: `${a.info.id} linked to ${b.info.id}` });
  return link!;
}

async function pair(net: MemoryNetwork, options: Partial<TransportOptions> = {}): Promise<[TestNode, TestNode, Link, Link]> {
  const a = node(net, 'n1', options, 'bootstrap');
  const b = node(net, 'n2', options);
  a.transport.dial('n2');
  const ab = await linked(a, b);
  const ba = await linked(b, a);
  return [a, b, ab, ba];
}

function direction(link: Link | undefined): string | undefined {
  return (link as PeerLink | undefined)?.direction;
}

/** True when `x` and `y` are the two ends of one connection: one dialed, the other accepted, same nonce. */
function same(x: Link | undefined, y: Link | undefined): boolean {
  const a = x as PeerLink | undefined;
  const b = y as PeerLink | undefined;
  return a !== undefined && b !== undefined && a.direction !== b.direction && a.nonce === b.nonce;
}

describe('MemoryTransport: links', () => {
  it('exchanges hellos: the link comes up on both ends with the other side PeerInfo', async () => {
    const net = network();
    const [a, b, ab, ba] = await pair(net);
    expect(ab.peer).toEqual({ ...b.info, rawBodies: true, rawTells: true });
    expect(ba.peer).toEqual({ ...a.info, rawBodies: true, rawTells: true });
    expect(ab.open && ba.open).toBe(true);
    expect(a.rec.events).toEqual(['up n2']);
    expect(b.rec.events).toEqual(['up n1']);
    expect(a.transport.links()).toEqual([ab]);
    expect(b.transport.links()).toEqual([ba]);
    expect(direction(ab)).toBe('out');
    expect(direction(ba)).toBe('in');
  });

  it('links every pair of a five-node cluster that dials through one seed and then each other', async () => {
    const net = network();
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => node(net, id));
    // Everyone dials everyone (as membership does once it learnt the view), n1 included.
    for (const x of nodes) for (const y of nodes) if (x !== y) x.transport.dial(y.info.address);
    await waitFor(() => nodes.every((x) => x.transport.links().length === 4), { what: 'full mesh' });
    await net.flush();
    for (const x of nodes) {
      for (const y of nodes) {
        if (x === y) continue;
        const xy = x.transport.link(y.info.id);
        const yx = y.transport.link(x.info.id);
        // The kept link is the one dialed by the smaller id, seen from both ends.
        expect(direction(xy)).toBe(x.info.id < y.info.id ? 'out' : 'in');
        expect(direction(yx)).toBe(y.info.id < x.info.id ? 'out' : 'in');
      }
      // Each end saw an up for every link it ended with, and a down for every other up.
      const ups = x.rec.events.filter((e) => e.startsWith('up')).length;
      const downs = x.rec.events.filter((e) => e.startsWith('down')).length;
      expect(ups - downs).toBe(4);
    }
  });

  it('messages arrive in order, each once, in both directions', async () => {
    const net = network();
    const [a, b, ab, ba] = await pair(net);
    for (let i = 0; i < 1_000; i++) ab.send('m', { i });
    for (let i = 0; i < 10; i++) ba.send('back', i);
    await waitFor(() => b.rec.messages.length === 1_000 && a.rec.messages.length === 10);
    expect(b.rec.messages.map((m) => (m.body as { i: number }).i)).toEqual([...Array(1_000).keys()]);
    expect(b.rec.messages.every((m) => m.from === 'n1' && m.method === 'm')).toBe(true);
    expect(a.rec.messages.map((m) => m.body)).toEqual([...Array(10).keys()]);
    await net.flush();
    expect(b.rec.messages).toHaveLength(1_000);
  });

  it('delivers asynchronously, a JSON copy of the body', async () => {
    const net = network();
    const [, b, ab] = await pair(net);
    const body = { list: [1], when: new Date(0), gone: undefined as unknown };
    ab.send('m', body);
    expect(b.rec.messages).toHaveLength(0);
    body.list.push(2);
    await net.flush();
    expect(b.rec.messages[0]?.body).toEqual({ list: [1], when: '1970-01-01T00:00:00.000Z' });
    ab.send('none', undefined);
    ab.send('null', null);
    await net.flush();
    expect(b.rec.messages.slice(1).map((m) => [m.method, m.body])).toEqual([
      ['none', undefined],
      ['null', null],
    ]);
    // A raw body arrives as a copy of its bytes.
    const raw = Buffer.from('raw');
    ab.send('raw', raw);
    raw[0] = 0x52;
    await net.flush();
    expect(b.rec.messages[3]?.body).toEqual(Buffer.from('raw'));
  });

  it('a body that is not JSON-serializable throws on send and rejects a request', async () => {
    const net = network();
    const [, , ab] = await pair(net);
    expect(() => ab.send('m', { n: 1n })).toThrow(TypeError);
    await expect(ab.request('r', { n: 1n }, 1_000)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await ab.request('r', 1, 1_000)).toEqual({ echo: 1, method: 'r' });
  });
});

describe('MemoryTransport: requests', () => {
  it('resolves with the remote answer, also for async handlers and undefined answers', async () => {
    const net = network();
    const [, b, ab] = await pair(net);
    expect(await ab.request('echo', { x: 1 }, 1_000)).toEqual({ echo: { x: 1 }, method: 'echo' });
    b.rec.answer = async (method) => {
      await new Promise((r) => setImmediate(r));
      return method === 'nothing' ? undefined : [method];
    };
    expect(await ab.request('list', null, 1_000)).toEqual(['list']);
    expect(await ab.request('nothing', null, 1_000)).toBeUndefined();
    expect((ab as PeerLink).pendingRequests).toBe(0);
  });

  it('re-raises the remote CeiError with its code and message; other errors are INTERNAL', async () => {
    const net = network();
    const [, b, ab] = await pair(net);
    b.rec.answer = (method) => {
      if (method === 'missing') throw new NotFoundError('no such actor counter/x');
      if (method === 'busy') throw new UnavailableError('fenced');
      if (method === 'custom') throw new CeiError('ALREADY_EXISTS', 'exists');
      if (method === 'bug') throw new RangeError('oops');
      if (method === 'bad-answer') return { n: 1n };
      return null;
    };
    const missing = await ab.request('missing', null, 1_000).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ code: 'NOT_FOUND', message: 'no such actor counter/x', retryable: false });
    const busy = await ab.request('busy', null, 1_000).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(UnavailableError);
    expect(busy).toMatchObject({ code: 'UNAVAILABLE', message: 'fenced', retryable: true });
    await expect(ab.request('custom', null, 1_000)).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: 'exists' });
    const bug = await ab.request('bug', null, 1_000).catch((e: unknown) => e);
    expect(bug).toBeInstanceOf(CeiError);
    expect(bug).toMatchObject({ code: 'INTERNAL', message: 'oops' });
    await expect(ab.request('bad-answer', null, 1_000)).rejects.toMatchObject({ code: 'INTERNAL' });
    // The link survives all of that.
    expect(await ab.request('fine', null, 1_000)).toBeNull();
  });

  it('answers in completion order, not request order', async () => {
    const net = network();
    const [, b, ab] = await pair(net);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    b.rec.answer = async (method) => {
      if (method === 'slow') await gate;
      return method;
    };
    const order: string[] = [];
    const slow = ab.request('slow', null, 5_000).then((v) => order.push(v as string));
    const fast = ab.request('fast', null, 5_000).then((v) => order.push(v as string));
    await fast;
    release();
    await slow;
    expect(order).toEqual(['fast', 'slow']);
  });

  it('times out on the injected clock with DeadlineExceededError, and ignores the late answer', async () => {
    const net = network();
    const clock = new FakeClock();
    const [, b, ab] = await pair(net, { clock });
    let answer!: (v: unknown) => void;
    b.rec.answer = () => new Promise((r) => (answer = r));
    const outcome = ab.request('slow', null, 1_000).catch((e: unknown) => e);
    await waitFor(() => answer !== undefined);
    clock.advance(999);
    await net.flush();
    expect((ab as PeerLink).pendingRequests).toBe(1);
    clock.advance(1);
    const err = await within(outcome, 'request outcome');
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err).toMatchObject({ code: 'DEADLINE_EXCEEDED', retryable: true });
    expect((ab as PeerLink).pendingRequests).toBe(0);
    answer('late');
    await net.flush();
    b.rec.answer = (method, body) => ({ echo: body, method });
    expect(ab.open).toBe(true);
    expect(await within(ab.request('again', 1, 1_000), 'second request')).toEqual({ echo: 1, method: 'again' });
  });

  it('rejects every pending request with UnavailableError when the link drops', async () => {
    const net = network();
    const [a, b, ab] = await pair(net);
    b.rec.answer = () => new Promise(() => {});
    const pending = [1, 2, 3].map((i) => ab.request('never', i, 60_000).catch((e: unknown) => e));
    await net.flush();
    net.cut('n1', 'n2');
    for (const err of await within(Promise.all(pending), 'rejections')) {
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    }
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    expect(b.rec.events).toEqual(['up n1', 'down n1']);
  });

  it('a closed link drops sends silently and rejects requests', async () => {
    const net = network();
    const [a, b, ab] = await pair(net, { reconnect: { initialMs: 60_000, maxMs: 60_000, multiplier: 1, jitter: 0 } });
    ab.close();
    expect(ab.open).toBe(false);
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    ab.send('m', 1);
    await expect(ab.request('r', 1, 1_000)).rejects.toBeInstanceOf(UnavailableError);
    await waitFor(() => b.rec.events.length === 2);
    expect(b.rec.events).toEqual(['up n1', 'down n1']);
    await net.flush();
    expect(b.rec.messages).toEqual([]);
  });
});

describe('MemoryTransport: one link per pair', () => {
  /** Waits until `a` and `b` hold exactly one link, the one `a` dialed, and nothing moves any more. */
  async function settledOnLinkDialedBy(net: MemoryNetwork, small: TestNode, large: TestNode): Promise<void> {
    await waitFor(() => direction(small.transport.link('b')) === 'out' && direction(large.transport.link('a')) === 'in', {
      what: 'the link dialed by a, on both ends',
    });
    await net.flush();
    expect(small.transport.links()).toHaveLength(1);
    expect(large.transport.links()).toHaveLength(1);
    expect(direction(small.transport.link('b'))).toBe('out');
    expect(direction(large.transport.link('a'))).toBe('in');
    for (const { rec } of [small, large]) {
      expect(rec.events.at(-1)).toMatch(/^up /);
      expect(rec.ups.length - rec.downs.length).toBe(1);
      expect(rec.ups.filter((l) => l.open)).toHaveLength(1);
    }
    const events = [small.rec.events.length, large.rec.events.length];
    await net.flush();
    expect([small.rec.events.length, large.rec.events.length]).toEqual(events);
    // The kept link works both ways.
    expect(await small.transport.link('b')!.request('x', 1, 1_000)).toEqual({ echo: 1, method: 'x' });
    expect(await large.transport.link('a')!.request('y', 2, 1_000)).toEqual({ echo: 2, method: 'y' });
  }

  it('keeps the link dialed by the smaller id when both dial at once', async () => {
    const net = network();
    const small = node(net, 'a');
    const large = node(net, 'b');
    small.transport.dial('b');
    large.transport.dial('a');
    await settledOnLinkDialedBy(net, small, large);
  });

  it('does not dial an address whose node is linked already', async () => {
    const net = network();
    const small = node(net, 'a');
    const large = node(net, 'b');
    large.transport.dial('a');
    await linked(large, small);
    await linked(small, large);
    small.transport.dial('b');
    await net.flush();
    // Nothing happened: the link b dialed serves a's dial too, until it drops.
    expect(small.rec.events).toEqual(['up b']);
    expect(direction(small.transport.link('b'))).toBe('in');
    net.cut('a', 'b');
    net.heal('a', 'b');
    // Both redial; whichever comes first is kept and the other dialer waits (or both meet and the rule decides).
    await waitFor(() => small.transport.link('b') && large.transport.link('a'));
    await net.flush();
    expect(same(small.transport.link('b'), large.transport.link('a'))).toBe(true);
    expect(small.rec.ups.length - small.rec.downs.length).toBe(1);
  });

  it('random dials, cuts, closes and restarts always settle on one shared link per pair', async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(seed);
      const net = network();
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
      const incarnations = new Map(ids.map((id) => [id, 1]));
      const live = new Map(ids.map((id) => [id, node(net, id)]));
      for (let step = 0; step < 100; step++) {
        const x = pick(random, ids);
        const y = pick(random, ids.filter((id) => id !== x));
        const action = randomInt(random, 10);
        if (action < 5) live.get(x)!.transport.dial(y);
        else if (action === 5) net.cut(x, y);
        else if (action === 6) net.heal(x, y);
        else if (action === 7) live.get(x)!.transport.link(y)?.close();
        else if (action === 8 && random() < 0.3) {
          net.kill(x);
          await live.get(x)!.transport.stop();
          const inc = incarnations.get(x)! + 1;
          incarnations.set(x, inc);
          live.set(x, node(net, x, {}, 'control', inc));
        }
        for (let t = randomInt(random, 4); t > 0; t--) await new Promise((r) => setImmediate(r));
      }
      net.healAll();
      for (const x of ids) for (const y of ids) if (x !== y) live.get(x)!.transport.dial(y);
      const nodes = [...live.values()];
      await waitFor(() => nodes.every((n) => n.transport.links().length === 4), { what: `full mesh (seed ${seed})` });
      await net.flush();
      for (const n of nodes) {
        expect(n.transport.links()).toHaveLength(4);
        expect(n.rec.ups.length - n.rec.downs.length).toBe(4);
        for (const l of n.transport.links()) {
          expect(l.peer.incarnation).toBe(incarnations.get(l.peer.id));
          expect(same(l, live.get(l.peer.id)!.transport.link(n.info.id)), `seed ${seed}: ${n.info.id}-${l.peer.id}`).toBe(true);
        }
      }
      const before = nodes.map((n) => n.rec.events.length);
      await net.flush();
      expect(nodes.map((n) => n.rec.events.length)).toEqual(before);
    }
  });

  /** Makes `t` forget its links without the other ends hearing of it, as when only this end saw a connection die. */
  function dropSilently(t: MemoryTransport): void {
    for (const l of t.links()) (l as PeerLink).wire = { write() {}, end() {}, abort() {} };
  }

  it('a redial replaces a link the other end still holds (same dialer: the later dial wins)', async () => {
    const net = network();
    const [a, b, ab] = await pair(net);
    dropSilently(a.transport);
    ab.close();
    // n2 never heard; n1 redials, and n2 must take the new link over the one it holds.
    const fresh = await linked(a, b);
    await waitFor(() => same(fresh, b.transport.link('n1')), { what: 'n2 took the redialed link' });
    expect(b.rec.events).toEqual(['up n1', 'down n1', 'up n1']);
    expect(await fresh.request('x', 1, 1_000)).toEqual({ echo: 1, method: 'x' });
  });

  it('a link to a newer incarnation replaces a leftover of the old one, whoever dialed', async () => {
    for (const restarted of ['n1', 'n2']) {
      const net = network();
      const [a, b] = await pair(net); // dialed by n1, the smaller id
      const [gone, stays] = restarted === 'n1' ? [a, b] : [b, a];
      dropSilently(gone.transport);
      await gone.transport.stop();
      const back = node(net, restarted, {}, 'control', 2);
      back.transport.dial(stays.info.address);
      await waitFor(() => stays.transport.link(restarted)?.peer.incarnation === 2, { what: `${stays.info.id} linked to the new ${restarted}` });
      expect(same(stays.transport.link(restarted), await linked(back, stays))).toBe(true);
      expect(stays.rec.events).toEqual([`up ${restarted}`, `down ${restarted}`, `up ${restarted}`]);
    }
  });

  it('ignores a dial of its own address, and stops dialing it', async () => {
    const net = network();
    const clock = new FakeClock();
    const a = node(net, 'n1', { clock });
    const b = node(net, 'n2', { clock });
    a.transport.dial('n1');
    a.transport.dial('n2');
    await linked(a, b);
    await net.flush();
    expect(a.transport.links().map((l) => l.peer.id)).toEqual(['n2']);
    expect(a.rec.events).toEqual(['up n2']);
    // No redial of itself is planned: no timer is pending on the clock.
    expect(clock.timerCount).toBe(0);
    clock.advance(60_000);
    await net.flush();
    expect(a.rec.events).toEqual(['up n2']);
    expect(a.transport.dialing()).toEqual(['n1', 'n2']);
  });
});

describe('MemoryNetwork: faults', () => {
  it('cut drops the link at once and prevents new ones until heal; the dialer then relinks', async () => {
    const net = network();
    const clock = new FakeClock();
    const [a, b] = await pair(net, { clock });
    net.cut('n2', 'n1');
    expect(a.transport.links()).toEqual([]);
    expect(b.transport.links()).toEqual([]);
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    // Redials fail while cut, however long we wait.
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      await net.flush();
    }
    expect(a.transport.links()).toEqual([]);
    net.heal('n1', 'n2');
    await waitFor(() => a.transport.link('n2') && b.transport.link('n1'), { step: () => clock.advance(10), what: 'relinked after heal' });
    expect(a.rec.events).toEqual(['up n2', 'down n2', 'up n2']);
    expect(b.rec.events).toEqual(['up n1', 'down n1', 'up n1']);
    expect(a.rec.ups[1]).not.toBe(a.rec.ups[0]);
    expect(a.rec.ups[0]!.open).toBe(false);
  });

  it('isolate cuts one node from all others; heal(address) lets it back', async () => {
    const net = network();
    const nodes = ['n1', 'n2', 'n3'].map((id) => node(net, id));
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
    n1.transport.dial('n2');
    n1.transport.dial('n3');
    n2.transport.dial('n3');
    await waitFor(() => nodes.every((n) => n.transport.links().length === 2));
    net.isolate('n3');
    expect(n3.transport.links()).toEqual([]);
    expect(n1.transport.links().map((l) => l.peer.id)).toEqual(['n2']);
    expect(n2.transport.links().map((l) => l.peer.id)).toEqual(['n1']);
    expect(net.reachable('n1', 'n3')).toBe(false);
    net.heal('n3');
    await waitFor(() => nodes.every((n) => n.transport.links().length === 2), { what: 'full mesh again' });
  });

  it('partition cuts every pair across two sides', async () => {
    const net = network();
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((id) => node(net, id));
    for (const x of nodes) for (const y of nodes) if (x.info.id < y.info.id) x.transport.dial(y.info.id);
    await waitFor(() => nodes.every((n) => n.transport.links().length === 3));
    net.partition(['n1', 'n2'], ['n3', 'n4']);
    const peers = (n: TestNode): string[] => n.transport.links().map((l) => l.peer.id).sort();
    expect(nodes.map(peers)).toEqual([['n2'], ['n1'], ['n4'], ['n3']]);
    net.healAll();
    await waitFor(() => nodes.every((n) => n.transport.links().length === 3), { what: 'healed' });
  });

  it('kill: the node vanishes, dials to it fail, and a restart on its address is linked again', async () => {
    const net = network();
    const [a, b] = await pair(net);
    const pending = a.transport.link('n2')!.request('x', 1, 60_000);
    b.rec.answer = () => new Promise(() => {});
    net.kill('n2');
    expect(a.transport.links()).toEqual([]);
    expect(b.transport.links()).toEqual([]);
    await expect(pending).rejects.toBeInstanceOf(UnavailableError);
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    // The dead transport cannot link again, in either direction.
    b.transport.dial('n1');
    await net.flush();
    expect(b.transport.links()).toEqual([]);
    expect(a.transport.links()).toEqual([]);
    expect(net.addresses()).toEqual(['n1']);
    // A restart: a new transport on the same address with a newer incarnation; n1 redials it.
    const b2 = node(net, 'n2', {}, 'control', 2);
    const link = await linked(a, b2);
    expect(link.peer.incarnation).toBe(2);
    expect(await link.request('x', 2, 1_000)).toEqual({ echo: 2, method: 'x' });
    expect(() => net.kill('n9')).toThrow(NotFoundError);
  });

  it('forget stops redialing; an attempt in progress is abandoned', async () => {
    const net = network();
    const clock = new FakeClock();
    const [a] = await pair(net, { clock });
    net.cut('n1', 'n2');
    a.transport.forget('n2');
    net.heal('n1', 'n2');
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      await net.flush();
    }
    expect(a.transport.links()).toEqual([]);
    expect(a.transport.dialing()).toEqual([]);
    expect(clock.timerCount).toBe(0);
  });

  it('stop reports every link down on both ends, refuses new links and makes dial a no-op', async () => {
    const net = network();
    const [a, b] = await pair(net);
    await a.transport.stop();
    expect(a.rec.events).toEqual(['up n2', 'down n2']);
    await waitFor(() => b.rec.events.length === 2);
    expect(b.rec.events).toEqual(['up n1', 'down n1']);
    a.transport.dial('n2');
    expect(a.transport.dialing()).toEqual([]);
    // n2 keeps dialing n1 (nobody listens there now) and links once a new n1 starts.
    b.transport.dial('n1');
    await net.flush();
    expect(b.transport.links()).toEqual([]);
    const a2 = node(net, 'n1', {}, 'bootstrap', 2);
    await linked(b, a2);
  });

  it('refuses a second live node on one address, and misuse before start', () => {
    const net = network();
    node(net, 'n1');
    const t = net.transport();
    expect(() => t.start({ id: 'other', address: 'n1', role: 'worker', incarnation: 1 }, new Recorder())).toThrow(/in use/);
    expect(() => t.dial('n1')).toThrow(/not started/);
    expect(() => t.start({ id: '', address: 'x', role: 'worker', incarnation: 1 }, new Recorder())).toThrow(InvalidArgumentError);
  });
});
