import { describe, expect, it } from 'vitest';
import { RingPlacement } from '../../../src/cluster/ring-placement.js';
import { MembershipView, type Member, type MemberStatus } from '../../../src/cluster/membership.js';
import type { ActorRef } from '../../../src/runtime/ref.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];

function view(statuses: Record<string, MemberStatus>, version: number): MembershipView {
  const members: Member[] = Object.entries(statuses).map(([id, status]) => ({ id, address: `127.0.0.1:${1000 + id.charCodeAt(0)}`, role: 'control', status, incarnation: 1, since: 0 }));
  return MembershipView.of(members, { version });
}

const allUp = (): Record<string, MemberStatus> => Object.fromEntries(NODES.map((id) => [id, 'up' as MemberStatus]));

/** A placement for node `self` with R=2, every peer confirmed its hand-off for the current rings. */
function settled(self: string, statuses: Record<string, MemberStatus>, version: number, now: () => number = () => 0): RingPlacement {
  const p = new RingPlacement(self, 2, () => 'any', undefined, now);
  p.update(view(statuses, version));
  for (const peer of p.awaitingHandoffs) p.handoffDone(peer, p.signature);
  return p;
}

const counters: ActorRef[] = Array.from({ length: 400 }, (_, i) => ({ type: 'counter', id: `c-${i}` }));

describe('RingPlacement: refused owners step aside for a moment', () => {
  it('an actor a replica refused is neither owned nor activated until the mark expires', () => {
    let now = 1_000;
    const p = settled('a', allUp(), 5, () => now);
    const mine = counters.find((ref) => p.owns(ref))!;
    p.disown('counter/' + mine.id);
    expect(p.owns(mine)).toBe(false);
    expect(() => p.checkOwner(mine)).toThrow(/a replica knows a newer owner/);
    now += 499;
    expect(p.owns(mine)).toBe(false);
    now += 2;
    expect(p.owns(mine)).toBe(true);
    expect(() => p.checkOwner(mine)).not.toThrow();
  });

  it('a ring change ends the mark at once', () => {
    const p = settled('a', allUp(), 5, () => 0);
    const mine = counters.find((ref) => p.owns(ref) && p.ownerOf(ref) === 'a')!;
    p.disown('counter/' + mine.id);
    const statuses = allUp();
    statuses.e = 'down';
    expect(p.update(view(statuses, 6))).toBe(true);
    expect(p.owns(mine)).toBe(p.ownerOf(mine) === 'a');
  });
});

describe('RingPlacement: copies lost with more than R-1 nodes', () => {
  it('one node down (R=2) loses nothing', () => {
    const p = settled('a', allUp(), 5);
    const statuses = allUp();
    statuses.b = 'down';
    p.update(view(statuses, 6));
    expect(counters.filter((ref) => p.lostCopies(ref) !== undefined)).toEqual([]);
  });

  it('two nodes down at once (R=2): exactly the actors held only by them are lost, until one returns', () => {
    const p = settled('a', allUp(), 5);
    const before = new Map(counters.map((ref) => [ref.id, p.preferenceList(ref)]));
    const statuses = allUp();
    statuses.b = 'down';
    statuses.c = 'down';
    p.update(view(statuses, 6));
    const heldOnlyByThem = counters.filter((ref) => before.get(ref.id)!.every((id) => id === 'b' || id === 'c'));
    expect(heldOnlyByThem.length).toBeGreaterThan(0);
    expect(counters.filter((ref) => p.lostCopies(ref) !== undefined)).toEqual(heldOnlyByThem);
    expect(p.lostCopies(heldOnlyByThem[0]!)).toMatch(/every copy of counter\/c-\d+ was on [bc], [bc]/);
    // b restarts on its data directory: its copies are back.
    statuses.b = 'up';
    p.update(view(statuses, 7));
    expect(counters.filter((ref) => p.lostCopies(ref) !== undefined)).toEqual([]);
  });

  it('two nodes down one after the other, with the hand-off settled in between, lose nothing', () => {
    const p = settled('a', allUp(), 5);
    const statuses = allUp();
    statuses.b = 'down';
    p.update(view(statuses, 6));
    for (const peer of p.awaitingHandoffs) p.handoffDone(peer, p.signature);
    statuses.c = 'down';
    p.update(view(statuses, 7));
    expect(counters.filter((ref) => p.lostCopies(ref) !== undefined)).toEqual([]);
  });

  it('a graceful leave is not a loss', () => {
    const p = settled('a', allUp(), 5);
    const statuses = allUp();
    statuses.b = 'left';
    statuses.c = 'left';
    p.update(view(statuses, 6));
    expect(counters.filter((ref) => p.lostCopies(ref) !== undefined)).toEqual([]);
  });
});

describe('RingPlacement: replicas', () => {
  it('never names this node as a replica of its own writes, even for an actor it does not own', () => {
    const p = settled('a', allUp(), 5);
    const heldAsReplica = counters.filter((ref) => p.preferenceList(ref)[1] === 'a');
    expect(heldAsReplica.length).toBeGreaterThan(0);
    for (const ref of heldAsReplica) expect(p.replicasOfKey(ref, `counter/${ref.id}`)).not.toContain('a');
  });
});

describe('RingPlacement: loss records across a restart', () => {
  it('stores its loss records and takes them back, so a restarted node still refuses to recreate lost actors', () => {
    const p = settled('a', allUp(), 5);
    const saved: unknown[] = [];
    p.onLossesChanged = (losses) => saved.push(losses);
    const statuses = allUp();
    statuses.b = 'down';
    statuses.c = 'down';
    p.update(view(statuses, 6));
    const lost = counters.filter((ref) => p.lostCopies(ref) !== undefined);
    expect(lost.length).toBeGreaterThan(0);
    expect(saved).toHaveLength(1);

    // The node restarts: a fresh placement that has seen nothing settle, and the stored records.
    const restarted = new RingPlacement('a', 2, () => 'any', undefined, () => 0);
    restarted.restoreLosses(JSON.parse(JSON.stringify(saved[0])));
    restarted.update(view(statuses, 7));
    expect(counters.filter((ref) => restarted.lostCopies(ref) !== undefined)).toEqual(lost);

    // b comes back: the records are cleared, and that is stored too.
    restarted.onLossesChanged = (losses) => saved.push(losses);
    statuses.b = 'up';
    restarted.update(view(statuses, 8));
    expect(counters.filter((ref) => restarted.lostCopies(ref) !== undefined)).toEqual([]);
    expect(saved.at(-1)).toEqual([]);
  });

  it('ignores stored records that are not well formed', () => {
    const p = new RingPlacement('a', 2, () => 'any');
    p.restoreLosses([{ any: 'x' }, null, 7, { any: ['a'], control: ['a'], dead: [''], at: 1 }]);
    p.restoreLosses('not a list');
    expect(p.storedLosses()).toEqual([]);
  });
});

describe('RingPlacement: the per-actor hand-off barrier', () => {
  /** Node a after a's join to b and c: b and c have not handed over for the new rings yet. */
  function joined(): { p: RingPlacement; asked: string[]; answer: Array<() => void> } {
    const asked: string[] = [];
    const answer: Array<() => void> = [];
    const p = new RingPlacement('a', 2, () => 'any');
    p.onBarrier = (_ref, key) => {
      asked.push(key);
      return new Promise<void>((resolve) => answer.push(resolve));
    };
    p.update(view({ a: 'up', b: 'up', c: 'up' }, 3));
    return { p, asked, answer };
  }
  const pending = (promise: Promise<void> | undefined): Promise<'resolved' | 'pending'> =>
    Promise.race([promise!.then(() => 'resolved' as const), new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 20))]);

  it('an actor met by the barrier activates once every awaited peer cleared it, before their whole hand-off', async () => {
    const { p, asked, answer } = joined();
    const mine = counters.find((ref) => p.ownerOf(ref) === 'a')!;
    const key = `counter/${mine.id}`;
    expect(p.awaitingHandoffs.sort()).toEqual(['b', 'c']);
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    expect(asked).toEqual([key]); // one question in flight per actor
    const cleared = p.clearance(mine);
    p.cleared('b', p.signature, key);
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    p.cleared('c', 'some other rings', key);
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    p.cleared('c', p.signature, key);
    answer[0]!();
    expect(await pending(cleared)).toBe('resolved');
    expect(() => p.checkOwner(mine)).not.toThrow();
    // Another actor still waits for the whole hand-off.
    const other = counters.find((ref) => ref !== mine && p.ownerOf(ref) === 'a')!;
    expect(() => p.checkOwner(other)).toThrow(/being handed over/);
  });

  it('clearances are for one set of rings: a ring change asks again', async () => {
    const { p, asked, answer } = joined();
    const statuses: Record<string, MemberStatus> = { a: 'up', b: 'up', c: 'up', d: 'up' };
    p.update(view(statuses, 4));
    // Owned by a with and without e, so that only the ring change makes it wait again.
    const withE = new RingPlacement('a', 2, () => 'any');
    withE.update(view({ ...statuses, e: 'up' }, 5));
    const mine = counters.find((ref) => p.ownerOf(ref) === 'a' && withE.ownerOf(ref) === 'a')!;
    const key = `counter/${mine.id}`;
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    for (const peer of ['b', 'c', 'd']) p.cleared(peer, p.signature, key);
    answer[0]!();
    expect(() => p.checkOwner(mine)).not.toThrow();
    statuses.e = 'up';
    p.update(view(statuses, 5));
    expect(p.ownerOf(mine)).toBe('a');
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    expect(asked).toEqual([key, key]);
  });

  it('a question that comes back without clearing leaves the waiting call to its backoff, and the next call asks again', async () => {
    const { p, asked, answer } = joined();
    const mine = counters.find((ref) => p.ownerOf(ref) === 'a')!;
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    const waiting = p.clearance(mine);
    // A peer without a link answers nothing, at once: a call woken by that would meet the barrier
    // again at once, and its retries would spin without ever yielding to the event loop.
    answer[0]!();
    expect(await pending(waiting)).toBe('pending');
    expect(p.clearance(mine)).toBeUndefined();
    expect(() => p.checkOwner(mine)).toThrow(/being handed over/);
    expect(asked).toHaveLength(2);
  });
});
