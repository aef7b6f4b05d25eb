/**
 * ClusterRouter forwarding a tell whose answer is lost: the owner enqueued it, the router retries,
 * and the owner must recognise the retry; and a tell taken here whose replicated write failed, which
 * must not be enqueued again. Real ActorSystems on LevelDB; the link between them, and the replicas
 * of the node that owns, are stubs.
 */
import { describe, expect, it } from 'vitest';
import { counter } from '../../../src/actors/counter.js';
import { CLUSTER_TEST_PRESET } from '../../../src/cluster/cluster-options.js';
import { MembershipView, type Member } from '../../../src/cluster/membership.js';
import { RingPlacement } from '../../../src/cluster/ring-placement.js';
import { ClusterRouter } from '../../../src/cluster/router.js';
import type { Link, PeerInfo, Transport } from '../../../src/cluster/transport.js';
import { decodeForwardedTells, decodeTellOutcomes, encodeForwardedTells, encodeTellOutcomes } from '../../../src/cluster/tells-codec.js';
import { stubLink, transportTo } from '../../support/stub-link.js';
import { DeadlineExceededError, UnavailableError } from '../../../src/errors.js';
import { systemClock } from '../../../src/runtime/clock.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import type { TellOptions } from '../../../src/runtime/actor-service.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { ActorRef } from '../../../src/runtime/ref.js';
import type { ActorSystem } from '../../../src/runtime/runtime.js';
import type { Replicator } from '../../../src/runtime/placement.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();
const member = (id: string): Member => ({ id, address: id, role: 'control', status: 'up', incarnation: 1, since: 0 });

/** A link to the owner's ActorSystem that delivers every tell but loses the answer to the first `lose`. */
function lossyLink(owner: ActorSystem, lose: number): Link & { tells: TellOptions[] } {
  const tells: TellOptions[] = [];
  const link = stubLink(async (method, body) => {
    if (method !== 'actor.tell') throw new Error(`unexpected ${method}`);
    const b = body as { ref: ActorRef; payload: unknown; opts: TellOptions };
    tells.push(b.opts);
    const ack = await owner.tell(b.ref, b.payload, b.opts);
    if (tells.length <= lose) throw new DeadlineExceededError('request actor.tell to b: no answer within 5 ms');
    return ack;
  });
  return Object.assign(link, { tells });
}

/** Replicas that refuse the next `refuse` writes, as replicas that know a newer owner do. */
function refusingReplicas(): Replicator & { refuse: number } {
  return {
    refuse: 0,
    replicasFor: () => ['b'],
    replicate(_ref, _key, _ops, _sync, _replicas, done) {
      if (this.refuse === 0) {
        queueMicrotask(() => done());
        return;
      }
      this.refuse--;
      queueMicrotask(() => done(new UnavailableError('replica b knows a newer owner')));
    },
  };
}

/** A peer that reads binary actor.tells requests, as every node from the twelfth session on. */
const RAW_TELLS_PEER: PeerInfo = { id: 'b', address: 'b', role: 'control', incarnation: 1, rawBodies: true, rawTells: true };

/**
 * Two nodes on real LevelDB, a and b, that agree on a view of both: b's router as the owner, and
 * a's router forwarding over a stub link to b whose requests `answer` settles (given b's router).
 */
async function forwarderAndOwner(answer: (owner: ClusterRouter, method: string, body: unknown, self: Link) => Promise<unknown>, peer?: PeerInfo) {
  const [a, b] = [await nodes.node([counter]), await nodes.node([counter])];
  const view = MembershipView.of([member('a'), member('b')], { version: 1 });
  const [aPlacement, bPlacement] = [new RingPlacement('a', 2, () => 'any'), new RingPlacement('b', 2, () => 'any')];
  aPlacement.update(view);
  bPlacement.update(view);
  const owner = new ClusterRouter(b.system, bPlacement, {} as Transport, systemClock, CLUSTER_TEST_PRESET, silentLogger);
  const link = stubLink((method, body, self) => answer(owner, method, body, self), peer);
  const router = new ClusterRouter(a.system, aPlacement, transportTo(link), systemClock, CLUSTER_TEST_PRESET, silentLogger);
  /** The refs among `<prefix>0` to `<prefix>99` that b owns. */
  const ownedByB = (prefix: string): ActorRef[] => Array.from({ length: 100 }, (_, i): ActorRef => ({ type: 'counter', id: `${prefix}${i}` })).filter((r) => aPlacement.ownerOf(r) === 'b');
  return { a, b, router, ownedByB };
}

describe('ClusterRouter', () => {
  it('a call waiting to retry because its owner has no link goes on at the ring change, not after its retry delay', async () => {
    // The clock stands still: only the ring change can end the retry delay.
    const clock = new FakeClock();
    const placement = new RingPlacement('a', 1, () => 'any');
    placement.update(MembershipView.of([member('a'), member('b')], { version: 1 }));
    const a = await nodes.node([counter], { clock, deps: { placement } });
    const ref = Array.from({ length: 100 }, (_, i): ActorRef => ({ type: 'counter', id: `c${i}` })).find((r) => placement.ownerOf(r) === 'b')!;
    const noLinks = { link: () => undefined } as unknown as Transport;
    const router = new ClusterRouter(a.system, placement, noLinks, clock, CLUSTER_TEST_PRESET, silentLogger);

    let answered = false;
    const told = router.tell(ref, { add: 1 }, { messageId: 'm1' }).finally(() => (answered = true));
    await waitFor(() => clock.timerCount > 0, { what: 'the call to wait out a retry delay' });
    expect(answered).toBe(false);
    // b is declared down: the actor is a's now.
    expect(placement.update(MembershipView.of([member('a'), { ...member('b'), status: 'down' }], { version: 2 }))).toBe(true);
    router.ringsChanged();
    await waitFor(() => answered, { what: 'the call to go on at the ring change', timeoutMs: 2_000 });
    expect(await told).toMatchObject({ messageId: 'm1', duplicate: false });
    expect(await a.system.ask(ref, { get: true })).toMatchObject({ value: 1, count: 1 });
  });

  it('forwards a tell without a message id under an id of its own, so a retry after a lost answer is not enqueued twice', async () => {
    const [a, b] = [await nodes.node([counter]), await nodes.node([counter])];
    const placement = new RingPlacement('a', 2, () => 'any');
    placement.update(MembershipView.of([member('a'), member('b')], { version: 1 }));
    const refs = Array.from({ length: 100 }, (_, i): ActorRef => ({ type: 'counter', id: `c${i}` }));
    const ref = refs.find((r) => placement.ownerOf(r) === 'b')!;
    const link = lossyLink(b.system, 1);
    const transport = transportTo(link);
    const router = new ClusterRouter(a.system, placement, transport, systemClock, CLUSTER_TEST_PRESET, silentLogger);

    const ack = await router.tell(ref, { add: 5 });
    // Sent twice (the first answer was lost), under the same id of the router's.
    expect(link.tells).toHaveLength(2);
    expect(link.tells[0]!.messageId).toMatch(/^route:/);
    expect(link.tells[1]!.messageId).toBe(link.tells[0]!.messageId);
    // The caller sent it once, without an id: that is what it hears back.
    expect(ack).toMatchObject({ messageId: '', duplicate: false });
    expect(await b.system.ask(ref, { get: true })).toMatchObject({ value: 5, count: 1 });

    // A caller's own id is forwarded as it is.
    const own = await router.tell(ref, { add: 1 }, { messageId: 'mine-1' });
    expect(link.tells[2]!.messageId).toBe('mine-1');
    expect(own).toMatchObject({ messageId: 'mine-1', duplicate: false });

    // The payload's text stays on this node: the owner makes its own from the payload it receives.
    await router.tell(ref, { add: 2 }, { messageId: 'mine-2', payloadJson: '{"add":2}' });
    expect(link.tells[3]).toEqual({ messageId: 'mine-2' });
    expect(await b.system.ask(ref, { get: true })).toMatchObject({ value: 8, count: 3 });
  });

  it('does not enqueue a tell without an id, or an ask, again when it was taken here but its replicated write failed', async () => {
    const replicas = refusingReplicas();
    const a = await nodes.node([counter], { deps: { replicator: replicas } });
    const placement = new RingPlacement('a', 2, () => 'any');
    placement.update(MembershipView.of([member('a'), member('b')], { version: 1 }));
    const ref = Array.from({ length: 100 }, (_, i): ActorRef => ({ type: 'counter', id: `u${i}` })).find((r) => placement.ownerOf(r) === 'a')!;
    const router = new ClusterRouter(a.system, placement, {} as Transport, systemClock, CLUSTER_TEST_PRESET, silentLogger);
    await router.tell(ref, { add: 1 });

    replicas.refuse = 1;
    const refused = router.tell(ref, { add: 5 });
    await expect(refused).rejects.toThrow(/may or may not take effect/);
    await expect(refused).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: false });
    // The turn ran and its local write landed before the replica refused: sent once, counted once.
    // A retry here would have made it 11.
    expect(await a.system.ask(ref, { get: true })).toMatchObject({ value: 6, count: 2 });

    // Under the caller's own id the same failure is retried, and the dedup window answers it.
    replicas.refuse = 1;
    expect(await router.tell(ref, { add: 2 }, { messageId: 'own-1' })).toMatchObject({ messageId: 'own-1' });
    expect(await a.system.ask(ref, { get: true })).toMatchObject({ value: 8, count: 3 });

    // An ask has no id: taken here, it is not asked again either.
    replicas.refuse = 1;
    await expect(router.ask(ref, { add: 3 })).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: false });
    expect(await a.system.ask(ref, { get: true })).toMatchObject({ value: 11, count: 4 });
  });

  it("forwards one macrotask's tells to an owner in actor.tells requests of up to 32, each tell settling on its own", async () => {
    const requests: Array<{ method: string; items: number }> = [];
    const { b, router, ownedByB } = await forwarderAndOwner((owner, method, body, self) => {
      requests.push({ method, items: (body as { items?: unknown[] }).items?.length ?? 1 });
      // As the wire would: the answer crosses as JSON.
      return owner.onRequest(self, method, body).then((answer) => JSON.parse(JSON.stringify(answer)));
    });
    const refs = ownedByB('f');
    expect(refs.length).toBeGreaterThan(32);

    const tells = refs.map((ref, i) => router.tell(ref, i === 1 ? { add: 'two' } : { add: i + 1 }, { messageId: `f-${i}` }));
    const outcomes = await Promise.allSettled(tells);
    // At most 32 tells per request (FORWARD_BATCH_TELLS).
    expect(requests).toEqual([
      { method: 'actor.tells', items: 32 },
      { method: refs.length === 33 ? 'actor.tell' : 'actor.tells', items: refs.length - 32 },
    ]);
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT' } });
    for (const [i, o] of outcomes.entries()) if (i !== 1) expect(o).toMatchObject({ status: 'fulfilled', value: { messageId: `f-${i}`, duplicate: false } });
    expect(await b.system.ask(refs[0]!, { get: true })).toMatchObject({ value: 1, count: 1 });
    expect(await b.system.ask(refs[2]!, { get: true })).toMatchObject({ value: 3, count: 1 });
    // Nothing of the refused tell reached its actor.
    expect(await b.system.ask(refs[1]!, { get: true })).toMatchObject({ value: 0, count: 0 });
  });

  it('speaks actor.tells in binary to a peer whose hello says rawTells, with the same outcomes, ids and payloads', async () => {
    const requests: Array<{ method: string; binary: boolean }> = [];
    const { b, router, ownedByB } = await forwarderAndOwner((owner, method, body, self) => {
      requests.push({ method, binary: body instanceof Uint8Array });
      return owner.onRequest(self, method, body);
    }, RAW_TELLS_PEER);
    const refs = ownedByB('r');

    // One macrotask's tells: a bad one among them, one without an id, one whose text came along
    // from the public API (stored as it is), one with an id of the caller's.
    const outcomes = await Promise.allSettled([
      router.tell(refs[0]!, { add: 1 }, { messageId: 'r-0' }),
      router.tell(refs[1]!, { add: 'two' }, { messageId: 'r-1' }),
      router.tell(refs[2]!, { add: 3 }),
      router.tell(refs[3]!, { add: 4 }, { messageId: 'r-3', payloadJson: '{"add": 4}' }),
    ]);
    expect(requests).toEqual([{ method: 'actor.tells', binary: true }]);
    expect(outcomes[0]).toMatchObject({ status: 'fulfilled', value: { messageId: 'r-0', duplicate: false } });
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT' } });
    expect(outcomes[2]).toMatchObject({ status: 'fulfilled', value: { messageId: '', duplicate: false } });
    expect(outcomes[3]).toMatchObject({ status: 'fulfilled', value: { messageId: 'r-3', duplicate: false } });
    expect(await b.system.ask(refs[0]!, { get: true })).toMatchObject({ value: 1, count: 1 });
    expect(await b.system.ask(refs[1]!, { get: true })).toMatchObject({ value: 0, count: 0 });
    expect(await b.system.ask(refs[2]!, { get: true })).toMatchObject({ value: 3, count: 1 });
    expect(await b.system.ask(refs[3]!, { get: true })).toMatchObject({ value: 4, count: 1 });

    // A single tell goes the same way, and a repeat of an id is recognised across it.
    const again = await router.tell(refs[0]!, { add: 1 }, { messageId: 'r-0' });
    expect(again).toMatchObject({ messageId: 'r-0', duplicate: true });
    expect(requests).toHaveLength(2);
    expect(requests[1]).toEqual({ method: 'actor.tells', binary: true });
    expect(await b.system.ask(refs[0]!, { get: true })).toMatchObject({ value: 1, count: 1 });
  });

  it('refuses a binary actor.tells request that is not one, and answers a tell whose payload is not JSON with its own error', async () => {
    const b = await nodes.node([counter]);
    const bPlacement = new RingPlacement('b', 2, () => 'any');
    bPlacement.update(MembershipView.of([member('a'), member('b')], { version: 1 }));
    const owner = new ClusterRouter(b.system, bPlacement, {} as Transport, systemClock, CLUSTER_TEST_PRESET, silentLogger);
    const self = stubLink(() => Promise.reject(new Error('not used')));
    await expect(owner.onRequest(self, 'actor.tells', Buffer.from('{"items":[]}'))).rejects.toThrow(/malformed actor.tells request/);
    const ref = Array.from({ length: 100 }, (_, i): ActorRef => ({ type: 'counter', id: `j${i}` })).find((r) => bPlacement.ownerOf(r) === 'b')!;
    const answer = await owner.onRequest(self, 'actor.tells', encodeForwardedTells([{ ref, payloadJson: '{"add":' }, { ref, payloadJson: '{"add":2}' }]));
    expect(decodeTellOutcomes(answer as Uint8Array)).toEqual([
      { code: 'INVALID_ARGUMENT', error: expect.stringMatching(/is not JSON/) as unknown },
      { ack: { seq: 1, messageId: '', duplicate: false } },
    ]);
    expect(await b.system.ask(ref, { get: true })).toMatchObject({ value: 2, count: 1 });
  });

  it('sends a macrotask of binary forwards in requests of up to 512 tells, or fewer once their payloads reach 8 MiB', async () => {
    const sizes: number[] = [];
    const { router, ownedByB } = await forwarderAndOwner((_owner, _method, body) => {
      const tells = decodeForwardedTells(body as Uint8Array);
      sizes.push(tells.length);
      return Promise.resolve(encodeTellOutcomes(tells.map((t, i) => ({ ack: { seq: i + 1, messageId: t.messageId ?? '', duplicate: false } }))));
    }, RAW_TELLS_PEER);
    const refs = ownedByB('s');
    await Promise.all(Array.from({ length: 600 }, (_, i) => router.tell(refs[i % refs.length]!, { add: 1 }, { messageId: `s-${i}` })));
    expect(sizes).toEqual([512, 88]);

    // Payloads of 1 MiB: a request closes once 8 MiB of them are in it.
    sizes.length = 0;
    const big = 'x'.repeat(1024 * 1024);
    await Promise.all(Array.from({ length: 10 }, (_, i) => router.tell(refs[0]!, { big }, { messageId: `b-${i}` })));
    expect(sizes).toEqual([8, 2]);
  });
});
