/**
 * ClusterReplicator between two nodes over the in-memory transport, each with a real LevelDB store:
 * what a replica refuses, and what it applies, in one batch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CopyTrust } from '../../../src/cluster/copy-trust.js';
import { MembershipView, type Member } from '../../../src/cluster/membership.js';
import { ClusterReplicator } from '../../../src/cluster/replication.js';
import { decodeWriteRequest } from '../../../src/cluster/repl-codec.js';
import { RingPlacement } from '../../../src/cluster/ring-placement.js';
import type { LinkHandler } from '../../../src/cluster/transport.js';
import { stubLink, transportTo } from '../../support/stub-link.js';
import { TRANSPORT_TEST_PRESET } from '../../../src/cluster/transport-core.js';
import { MemoryNetwork } from '../../../src/cluster/transport-memory.js';
import { systemClock } from '../../../src/runtime/clock.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { refKey, type ActorRef } from '../../../src/runtime/ref.js';
import { keys, Store, type Op } from '../../../src/runtime/store.js';
import { waitFor } from '../../support/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function store(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'cei-repl-'));
  const s = await Store.open(dir);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => s.close());
  return s;
}

const member = (id: string): Member => ({ id, address: id, role: 'control', status: 'up', incarnation: 1, since: 0 });

function placement(self: string, ids: string[], version: number): RingPlacement {
  const p = new RingPlacement(self, 2, () => 'any');
  p.update(MembershipView.of(ids.map(member), { version }));
  return p;
}

/** Replicators a and b over one memory network, a linked to b (b answers a's writes). */
async function linkedPair(net: MemoryNetwork, aPlacement: RingPlacement, bPlacement: RingPlacement, bTrust = new CopyTrust()) {
  const [aStore, bStore] = [await store(), await store()];
  const aTransport = net.transport(TRANSPORT_TEST_PRESET);
  const bTransport = net.transport(TRANSPORT_TEST_PRESET);
  const aReplicator = new ClusterReplicator('a', aPlacement, aTransport, aStore, systemClock, silentLogger, 2_000, new CopyTrust());
  const bReplicator = new ClusterReplicator('b', bPlacement, bTransport, bStore, systemClock, silentLogger, 2_000, bTrust);
  const quiet: LinkHandler = { onLinkUp() {}, onLinkDown() {}, onMessage() {}, onRequest: async () => null };
  /** Entries of each repl.write b was asked to apply, in arrival order (binary batches: repl-codec.ts). */
  const requests: number[] = [];
  const onRequest: LinkHandler['onRequest'] = (link, method, body) => {
    expect(body).toBeInstanceOf(Uint8Array);
    requests.push(decodeWriteRequest(body as Uint8Array).entries.length);
    return bReplicator.onRequest(link, method, body);
  };
  aTransport.start({ id: 'a', address: 'a', role: 'control', incarnation: 1 }, quiet);
  bTransport.start({ id: 'b', address: 'b', role: 'control', incarnation: 1 }, { ...quiet, onRequest });
  cleanups.push(() => aTransport.stop());
  cleanups.push(() => bTransport.stop());
  aTransport.dial('b');
  await waitFor(() => aTransport.link('b'), { what: 'a linked to b' });
  return { bStore, aReplicator, requests };
}

/** The replicator's callback as a promise. */
function replicate(r: ClusterReplicator, ref: ActorRef, key: string, ops: Op[], sync: boolean, replicas: string[], seed = false): Promise<void> {
  return new Promise((resolve, reject) => r.replicate(ref, key, ops, sync, replicas, (err) => (err === undefined ? resolve() : reject(err)), seed));
}

describe('ClusterReplicator', () => {
  it('a replica whose newer view names another owner refuses only that actor; the rest of the batch is applied', async () => {
    const net = new MemoryNetwork();
    // The owner 'a' still sees a two-node cluster (epoch 5); replica 'b' already sees 'c' (epoch 9).
    const aPlacement = placement('a', ['a', 'b'], 5);
    const bPlacement = placement('b', ['a', 'b', 'c'], 9);
    const { bStore, aReplicator } = await linkedPair(net, aPlacement, bPlacement);

    const refs: ActorRef[] = Array.from({ length: 200 }, (_, i) => ({ type: 'counter', id: `c-${i}` }));
    // Both actors are a's as far as a knows; b knows one of them has moved to c.
    const movedAway = refs.find((r) => aPlacement.ownerOf(r) === 'a' && bPlacement.ownerOf(r) === 'c')!;
    const stillA = refs.find((r) => aPlacement.ownerOf(r) === 'a' && bPlacement.ownerOf(r) === 'a')!;
    const write = (ref: ActorRef) => {
      const ops = [{ type: 'put' as const, key: keys.state(keys.actor(ref)), value: JSON.stringify({ v: { value: 1 }, h: 1, a: 1 }) }];
      return replicate(aReplicator, ref, refKey(ref), ops, true, ['b']);
    };
    // Both in one microtask: one batch.
    const refused = write(movedAway);
    const applied = write(stillA);
    await expect(refused).rejects.toThrow(/knows a newer owner/);
    await expect(applied).resolves.toBeUndefined();
    expect(await bStore.get(keys.state(keys.actor(stillA)))).toBeDefined();
    expect(await bStore.get(keys.state(keys.actor(movedAway)))).toBeUndefined();
    // The refused owner keeps away from that actor for a moment, not from the other.
    expect(aPlacement.owns(movedAway)).toBe(false);
    expect(() => aPlacement.checkOwner(movedAway)).toThrow(/a replica knows a newer owner/);
    expect(aPlacement.owns(stillA)).toBe(true);
    await aReplicator.drain();
  });

  it("sends a turn committed in the microtask after its message's enqueue in the same batch, so the replica writes neither the mail nor its removal", async () => {
    const net = new MemoryNetwork();
    const aPlacement = placement('a', ['a', 'b'], 5);
    const { bStore, aReplicator } = await linkedPair(net, aPlacement, placement('b', ['a', 'b'], 5));
    const ref = Array.from({ length: 50 }, (_, i): ActorRef => ({ type: 'counter', id: `t-${i}` })).find((r) => aPlacement.ownerOf(r) === 'a')!;
    const prefix = keys.actor(ref);
    const mail = keys.mail(prefix, 1);
    // The enqueue's write, then (as the cell's turn loop does) the turn's commit one microtask later.
    const enqueued = replicate(aReplicator, ref, refKey(ref), [{ type: 'put', key: mail, value: '{"s":1,"p":{"add":1}}', transient: true }], true, ['b']);
    const committed = new Promise<void>((resolve, reject) =>
      queueMicrotask(() => {
        const ops = [
          { type: 'del' as const, key: mail },
          { type: 'put' as const, key: keys.state(prefix), value: JSON.stringify({ v: { value: 1 }, h: 1, a: 1 }) },
        ];
        replicate(aReplicator, ref, refKey(ref), ops, true, ['b']).then(resolve, reject);
      }),
    );
    await Promise.all([enqueued, committed]);
    expect(await bStore.get(keys.state(prefix))).toBeDefined();
    expect(await bStore.get(mail)).toBeUndefined();
    expect(bStore.committer.cancelled).toBe(2);
  });

  it('sends the writes of one macrotask in one request, also when each came down its own chain of promises', async () => {
    const net = new MemoryNetwork();
    const aPlacement = placement('a', ['a', 'b'], 5);
    const { bStore, aReplicator, requests } = await linkedPair(net, aPlacement, placement('b', ['a', 'b'], 5));
    const refs = Array.from({ length: 40 }, (_, i): ActorRef => ({ type: 'counter', id: `m-${i}` })).filter((r) => aPlacement.ownerOf(r) === 'a');
    // As grpc-js hands over a read's messages: each one some promise hops after the one before.
    const hops = async (n: number) => {
      for (let i = 0; i < n; i++) await Promise.resolve();
    };
    const writes: Promise<void>[] = [];
    for (const ref of refs) {
      await hops(5);
      const ops = [{ type: 'put' as const, key: keys.state(keys.actor(ref)), value: JSON.stringify({ v: { value: 1 }, h: 1, a: 1 }) }];
      writes.push(replicate(aReplicator, ref, refKey(ref), ops, true, ['b']));
    }
    await Promise.all(writes);
    expect(requests).toEqual([refs.length]);
    for (const ref of refs) expect(await bStore.get(keys.state(keys.actor(ref)))).toBeDefined();
  });

  it('in one batch, wipes the copies it does not trust and replaces seeded ones, keeping trusted copies and earlier ops of the batch in order', async () => {
    const net = new MemoryNetwork();
    const aPlacement = placement('a', ['a', 'b'], 5);
    const bPlacement = placement('b', ['a', 'b'], 5);
    const bTrust = new CopyTrust();
    const { bStore, aReplicator } = await linkedPair(net, aPlacement, bPlacement, bTrust);

    const [untrusted, seeded, trusted, twice] = ['u', 's', 't', 'w'].map((id): ActorRef => ({ type: 'counter', id }));
    const state = (ref: ActorRef, h: number) => ({ type: 'put' as const, key: keys.state(keys.actor(ref)), value: JSON.stringify({ v: { value: h }, h, a: 1 }) });
    const stray = (ref: ActorRef) => `${keys.actor(ref)}stray`;
    // What b held before: a stray key in each copy (turns never acknowledged, say).
    await bStore.write([untrusted, seeded, trusted, twice].flatMap((ref) => [state(ref, 9), { type: 'put' as const, key: stray(ref), value: 'x' }]), true);
    bTrust.add(refKey(trusted));
    bTrust.add(refKey(seeded));
    const send = (ref: ActorRef, ops: Array<ReturnType<typeof state>>, seed = false) => replicate(aReplicator, ref, refKey(ref), ops, true, ['b'], seed);
    // All in one microtask: one batch.
    const done = Promise.all([
      send(untrusted, [state(untrusted, 2)]),
      send(seeded, [state(seeded, 3)], true),
      send(trusted, [state(trusted, 10)]),
      send(twice, [state(twice, 4), { type: 'put', key: `${keys.actor(twice)}early`, value: 'e' }]),
      send(twice, [state(twice, 5)], true),
    ]);
    await done;
    const handled = async (ref: ActorRef) => JSON.parse((await bStore.get(keys.state(keys.actor(ref))))!).h as number;
    expect(await handled(untrusted)).toBe(2);
    expect(await bStore.get(stray(untrusted))).toBeUndefined();
    expect(await handled(seeded)).toBe(3);
    expect(await bStore.get(stray(seeded))).toBeUndefined();
    expect(await handled(trusted)).toBe(10);
    expect(await bStore.get(stray(trusted))).toBe('x');
    // The seed replaced the whole copy, the earlier ops of the same batch included.
    expect(await handled(twice)).toBe(5);
    expect(await bStore.get(`${keys.actor(twice)}early`)).toBeUndefined();
    expect(await bStore.get(stray(twice))).toBeUndefined();
    for (const ref of [untrusted, seeded, trusted, twice]) expect(bTrust.has(refKey(ref))).toBe(true);
  });

  it('sends a peer whose hello did not offer raw bodies (an older node) its batches as JSON', async () => {
    const aPlacement = placement('a', ['a', 'b'], 5);
    const bodies: unknown[] = [];
    // Its hello carried no rawBodies.
    const older = stubLink((_method, body) => {
      bodies.push(body);
      return Promise.resolve({ rejected: [] });
    });
    const transport = transportTo(older);
    const aReplicator = new ClusterReplicator('a', aPlacement, transport, await store(), systemClock, silentLogger, 2_000, new CopyTrust());
    const ref: ActorRef = { type: 'counter', id: 'old-peer' };
    const ops: Op[] = [{ type: 'put', key: keys.state(keys.actor(ref)), value: '{"v":1}' }];
    await replicate(aReplicator, ref, refKey(ref), ops, false, ['b']);
    expect(bodies).toEqual([{ from: 'a', epoch: 5, sync: false, entries: [[refKey(ref), ops]] }]);
  });
});
