/**
 * How the runtime treats its replicator (the cluster's seam, src/runtime/placement.ts): the seed of a
 * loaded actor, a write a replica refuses, and duplicates confirmed from a copy loaded from disk.
 * The replicator here is a stand-in that records and answers as told; the real one is exercised by
 * the cluster integration and chaos tests.
 */
import { describe, expect, it } from 'vitest';
import { counter } from '../../../src/actors/counter.js';
import { UnavailableError, UnconfirmedMessageError } from '../../../src/errors.js';
import type { Replicator } from '../../../src/runtime/placement.js';
import type { Op } from '../../../src/runtime/store.js';
import { keys } from '../../../src/runtime/store.js';
import { deferred } from '../../support/deferred.js';
import type { WriteDone } from '../../../src/runtime/write-done.js';
import { recorder, ref } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();
const c1 = { type: 'counter', id: 'c-1' };

class StandInReplicator implements Replicator {
  readonly writes: Array<{ key: string; ops: Op[]; seed: boolean }> = [];
  /** Refuse every write while set, as a replica that knows a newer owner does. */
  refusing = false;
  /** Hold seeds until released. */
  heldSeed: ReturnType<typeof deferred<void>> | undefined;

  replicasFor(): readonly string[] {
    return ['peer-1'];
  }

  replicate(_ref: unknown, key: string, ops: Op[], _sync: boolean, _replicas: readonly string[], done: WriteDone, seed = false): void {
    this.writes.push({ key, ops, seed });
    if (this.refusing) queueMicrotask(() => done(new UnavailableError('replica peer-1 knows a newer owner')));
    else if (seed && this.heldSeed) this.heldSeed.promise.then(() => done());
    else queueMicrotask(() => done());
  }
}

describe('replicated writes', () => {
  it('seeds the replicas with the whole stored copy when an actor loads', async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([counter], { deps: { replicator } });
    await node.system.tell(c1, { add: 2 }, { messageId: 'm1' });
    // Restarted without recovery, so that the next tell is what loads it.
    await node.stop();
    await node.start();
    replicator.writes.length = 0;
    await node.system.tell(c1, { add: 3 }, { messageId: 'm2' });
    const seed = replicator.writes[0]!;
    expect(seed.seed).toBe(true);
    const put = new Map(seed.ops.filter((op) => op.type === 'put').map((op) => [op.key, op]));
    const prefix = keys.actor(c1);
    expect(put.has(keys.state(prefix))).toBe(true);
    expect(put.has(keys.dedup(prefix, 'm1'))).toBe(true);
    expect(put.has(keys.registry(c1))).toBe(true);
    expect(replicator.writes.slice(1).every((w) => !w.seed)).toBe(true);
  });

  it('says a replica holds the loaded copy only once it acknowledged the seed (hand-off skips offering it)', async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([counter], { deps: { replicator } });
    expect(node.system.seededTo(c1, 'peer-1')).toBe(false);
    replicator.heldSeed = deferred<void>();
    const told = node.system.tell(c1, { add: 1 }, { messageId: 'm1' });
    await waitFor(() => replicator.writes.some((w) => w.seed), { what: 'the seed to be sent' });
    expect(node.system.seededTo(c1, 'peer-1')).toBe(false);
    replicator.heldSeed.resolve();
    await told;
    expect(node.system.seededTo(c1, 'peer-1')).toBe(true);
    expect(node.system.seededTo(c1, 'peer-2')).toBe(false);
    await node.system.release(c1);
    expect(node.system.seededTo(c1, 'peer-1')).toBe(false);
  });

  it("sends a tell handled at once as one write with the turn, without the message's put or its removal", async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([counter], { deps: { replicator } });
    await node.system.tell(c1, { add: 1 }, { messageId: 'warm' });
    await node.system.ask(c1, { get: true });
    replicator.writes.length = 0;
    const before = node.store.committer.opsWritten;
    const { seq } = await node.system.tell(c1, { add: 2 }, { messageId: 'm-once' });
    expect(replicator.writes).toHaveLength(1);
    const prefix = keys.actor(c1);
    const written = replicator.writes[0]!.ops.map((op) => `${op.type} ${op.key}`);
    expect(written.filter((k) => k.endsWith(keys.mail(prefix, seq)))).toEqual([]);
    expect(written).toContain(`put ${keys.state(prefix)}`);
    expect(written).toContain(`put ${keys.dedup(prefix, 'm-once')}`);
    // Locally too, only what remains is written: the state and the dedup entry.
    expect(node.store.committer.opsWritten - before).toBe(replicator.writes[0]!.ops.length);
    expect(await node.system.ask(c1, { get: true })).toEqual({ value: 3, count: 2 });
  });

  it('a write a replica refuses fails its ack and unloads the actor; the retry with the same id counts once', async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([counter], { deps: { replicator } });
    await node.system.tell(c1, { add: 1 }, { messageId: 'm1' });
    replicator.refusing = true;
    // Taken, maybe handled, not confirmed: retryable only because the retry carries the same id.
    const refused = node.system.tell(c1, { add: 2 }, { messageId: 'm2' });
    await expect(refused).rejects.toThrow(/knows a newer owner.*may or may not take effect/);
    await expect(refused).rejects.toBeInstanceOf(UnconfirmedMessageError);
    await expect(refused).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    await waitFor(() => !node.system.isLoaded(c1), { what: 'the actor to leave memory' });
    replicator.refusing = false;
    const retry = await node.system.tell(c1, { add: 2 }, { messageId: 'm2' });
    expect(retry.duplicate).toBe(true);
    expect(await node.system.ask(c1, { get: true })).toEqual({ value: 3, count: 2 });
  });

  it('confirms a duplicate found in a copy loaded from disk only once the replicas hold the seed', async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([counter], { deps: { replicator } });
    await node.system.tell(c1, { add: 1 }, { messageId: 'm1' });
    await node.stop();
    await node.start();
    replicator.heldSeed = deferred<void>();
    let confirmed = false;
    const retry = node.system.tell(c1, { add: 1 }, { messageId: 'm1' }).then((ack) => {
      confirmed = true;
      return ack;
    });
    await waitFor(() => replicator.writes.some((w) => w.seed), { what: 'the seed to be sent' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(confirmed).toBe(false);
    replicator.heldSeed.resolve();
    expect((await retry).duplicate).toBe(true);
  });

  it('a recovery loads the next actor only once the seed of one it loaded settled: its seeds in flight are at most its concurrency', async () => {
    const replicator = new StandInReplicator();
    const node = await nodes.node([recorder], { deps: { replicator } });
    const actors = Array.from({ length: 8 }, (_, i) => ref('recorder', `pending-${i}`));
    // A timer far off keeps each actor's pending-work mark: each is recovered on the next start.
    await Promise.all(actors.map((a) => node.system.ask(a, { after: { name: 't', ms: 3_600_000, m: 'late' } })));
    await node.stop();
    await node.start();
    // Every seed is held until the test lets it go, the oldest first, whenever two are held.
    const held: Array<() => void> = [];
    let mostHeld = 0;
    replicator.replicate = (_ref, key, ops, _sync, _replicas, done, seed = false) => {
      replicator.writes.push({ key, ops, seed });
      if (!seed) return queueMicrotask(() => done());
      held.push(() => done());
      mostHeld = Math.max(mostHeld, held.length);
    };
    replicator.writes.length = 0;
    let recovered: number | undefined;
    const recovering = node.system.recover(2).then((n) => (recovered = n));
    for (let released = 0; released < actors.length; released++) {
      await waitFor(() => held.length >= Math.min(2, actors.length - released) || recovered !== undefined, { what: 'the recovery to seed two actors' });
      held.shift()?.();
    }
    expect(await recovering).toBe(actors.length);
    expect(replicator.writes.filter((w) => w.seed)).toHaveLength(actors.length);
    expect(mostHeld).toBe(2);
  });
});
