import { describe, expect, it, vi } from 'vitest';
import { counter } from '../../../src/actors/counter.js';
import type { Op, Store } from '../../../src/runtime/store.js';
import { dropTransientPairs } from '../../../src/runtime/group-commit.js';
import { joinWrites } from '../../../src/runtime/write-done.js';
import { waitFor } from '../../support/wait.js';
import { ref } from '../../support/actors.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { pick, randomInt, seededRandom } from '../../support/seeded-random.js';

const nodes = useTestNodes();

function put(key: string, value: string): Op {
  return { type: 'put', key, value };
}

/** Records the `sync` option of every chained batch the store's LevelDB writes. */
function spyOnSync(db: { batch: (...args: never[]) => unknown }): boolean[] {
  const syncs: boolean[] = [];
  const realBatch = db.batch.bind(db) as () => { write(options?: { sync?: boolean }): Promise<void> };
  vi.spyOn(db, 'batch').mockImplementation((() => {
    const chained = realBatch();
    const realWrite = chained.write.bind(chained);
    chained.write = (options?: { sync?: boolean }) => {
      syncs.push(options?.sync === true);
      return realWrite(options);
    };
    return chained;
  }) as never);
  return syncs;
}

/** A test node's store after a clean stop, its LevelDB closed: every write to it fails. */
async function closedStore(): Promise<Store> {
  const node = await nodes.node([]);
  await node.system.shutdown();
  await node.store.db.close();
  return node.store;
}

describe('group commit', () => {
  it('drains the batch in flight when nothing is pending, so a read after drain sees it', async () => {
    const node = await nodes.node([]);
    const { committer } = node.store;
    let landed = false;
    const written = node.store.write([put('z\x00inflight', 'v')], true).then(() => (landed = true));
    // Let the flush start: the batch is now in flight and nothing is pending.
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    await committer.drain();
    expect(landed).toBe(true);
    expect(await node.store.get('z\x00inflight')).toBe('v');
    await written;
  });

  it('writes a synchronous burst of writes as one LevelDB batch', async () => {
    const node = await nodes.node([]);
    const { committer } = node.store;
    const batchesBefore = committer.batches;
    const opsBefore = committer.opsWritten;
    const writes = Array.from({ length: 1_000 }, (_, i) => node.store.write([put(`z\x00${i}`, String(i))], false));
    await Promise.all(writes);
    expect(committer.batches - batchesBefore).toBe(1);
    expect(committer.opsWritten - opsBefore).toBe(1_000);
  });

  it('applies the transient-pair rule across the writes of a batch: a pair another write of the key separates stays', async () => {
    const node = await nodes.node([]);
    const { committer } = node.store;
    await node.store.write([put('z\x00kept', 'old')], true);
    const cancelledBefore = committer.cancelled;
    // Three writers in one batch: a mail-like transient put, a plain put of the same key (a seed
    // does that), then its removal. The key's last op is the del: it must end deleted.
    const writes = [
      node.store.write([{ type: 'put', key: 'z\x00kept', value: 'mail', transient: true }], false),
      node.store.write([put('z\x00kept', 'seeded')], false),
      node.store.write([{ type: 'del', key: 'z\x00kept' }], false),
      // And a plain pair beside it, which drops out.
      node.store.write([{ type: 'put', key: 'z\x00gone', value: 'mail', transient: true }], false),
      node.store.write([{ type: 'del', key: 'z\x00gone' }], false),
    ];
    await Promise.all(writes);
    expect(await node.store.get('z\x00kept')).toBeUndefined();
    expect(committer.cancelled - cancelledBefore).toBe(2);
  });

  it('collects writes issued while a batch is in flight into the next batch', async () => {
    const node = await nodes.node([]);
    const { committer } = node.store;
    const before = committer.batches;
    const first = node.store.write([put('z\x00first', '1')], true);
    // Let the first batch start writing, then issue more while it is in flight.
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    const rest = Array.from({ length: 200 }, (_, i) => node.store.write([put(`z\x00rest${i}`, String(i))], true));
    await Promise.all([first, ...rest]);
    expect(committer.batches - before).toBe(2);
  });

  it('turns many concurrent tells into far fewer batches than writes', async () => {
    const node = await nodes.node([counter]);
    const { system, store } = node;
    const actors = Array.from({ length: 20 }, (_, i) => ref('counter', `c${i}`));
    // Load the actors first so that the burst measures mailbox writes, not activations.
    await Promise.all(actors.map((a) => system.spawn(a, { value: 0 })));
    const before = store.committer.batches;
    const tells = 2_000;
    await Promise.all(Array.from({ length: tells }, (_, i) => system.tell(actors[i % actors.length]!, { add: 1 })));
    const totals = await Promise.all(actors.map((a) => system.ask<{ value: number; count: number }>(a, { get: true })));
    expect(totals.reduce((sum, t) => sum + t.value, 0)).toBe(tells);
    const batches = store.committer.batches - before;
    // Every tell is one mailbox write and every turn one commit write: thousands of writes.
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(tells / 20);
  });

  it('syncs a batch when any of its writes asked for sync, and only then', async () => {
    const node = await nodes.node([]);
    const syncs = spyOnSync(node.store.db as never);
    await Promise.all([
      node.store.write([put('z\x00a', '1')], false),
      node.store.write([put('z\x00b', '1')], true),
      node.store.write([put('z\x00c', '1')], false),
    ]);
    await Promise.all([node.store.write([put('z\x00d', '1')], false), node.store.write([put('z\x00e', '1')], false)]);
    expect(syncs).toEqual([true, false]);
  });

  it('has every write readable when its promise resolves, and every earlier write too', async () => {
    const node = await nodes.node([]);
    const { store } = node;
    const n = 300;
    const seenAtResolve: Array<Promise<Array<string | undefined>>> = [];
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < n; i++) {
      const write = store.write([put(`z\x00k${String(i).padStart(4, '0')}`, `v${i}`)], true);
      writes.push(write);
      // At the moment write i resolves, writes 0..i must all be in the database.
      seenAtResolve.push(write.then(() => store.db.getMany(Array.from({ length: i + 1 }, (_, j) => `z\x00k${String(j).padStart(4, '0')}`))));
      // Spread the writes over several batches.
      if (i % 50 === 49) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(writes);
    expect(store.committer.batches).toBeGreaterThan(1);
    const seen = await Promise.all(seenAtResolve);
    seen.forEach((values, i) => expect(values, `after write ${i}`).toEqual(Array.from({ length: i + 1 }, (_, j) => `v${j}`)));
  });

  it('keeps every acknowledged tell across a reopen of the store', async () => {
    const node = await nodes.node([counter]);
    const a = ref('counter', 'durable');
    const acks = await Promise.all(Array.from({ length: 100 }, () => node.system.tell(a, { add: 2 })));
    expect(acks.map((ack) => ack.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await node.restart();
    expect(await node.system.ask(a, { get: true })).toEqual({ value: 200, count: 100 });
  });

  it('applies writes in the order they were issued, across batches', async () => {
    const node = await nodes.node([]);
    const { store } = node;
    const first = store.write([put('z\x00order', 'old')], true);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    const second = store.write([put('z\x00order', 'new')], true);
    const third = store.write([{ type: 'del', key: 'z\x00gone' }, put('z\x00gone', 'back')], true);
    await Promise.all([first, second, third]);
    expect(await store.get('z\x00order')).toBe('new');
    expect(await store.get('z\x00gone')).toBe('back');
  });

  it('rejects writes once the database is closed instead of throwing out of band', async () => {
    const store = await closedStore();
    await expect(store.write([put('z\x00late', '1')], true)).rejects.toThrow(/not open/);
    // The committer stays failed: later writes reject too rather than hang.
    await expect(store.write([put('z\x00later', '1')], false)).rejects.toThrow(/not open/);
  });

  it('settles callback writers with their batch, in the order they joined, never before the batch is written', async () => {
    const node = await nodes.node([]);
    const { store } = node;
    const heard: string[] = [];
    store.writeThen([put('z\x00cb1', '1')], false, (err) => heard.push(`one ${String(err)}`));
    const promised = store.write([put('z\x00cb2', '2')], false);
    store.writeThen([put('z\x00cb3', '3')], true, (err) => heard.push(`three ${String(err)}`));
    expect(heard).toEqual([]);
    await promised;
    expect(heard).toEqual(['one undefined', 'three undefined']);
    expect(await store.get('z\x00cb3')).toBe('3');
  });

  it('fails callback writers of the failed batch and of every write after it, never synchronously', async () => {
    const store = await closedStore();
    const errors: unknown[] = [];
    store.writeThen([put('z\x00cblate', '1')], true, (err) => errors.push(err));
    await waitFor(() => errors.length === 1, { what: 'the failed write reported' });
    store.writeThen([put('z\x00cblater', '1')], true, (err) => errors.push(err));
    expect(errors).toHaveLength(1);
    await waitFor(() => errors.length === 2, { what: 'the later write reported' });
    for (const err of errors) expect(String(err)).toMatch(/not open/);
  });
});

describe('joinWrites', () => {
  it('reports once, after the last part, with the first failure', () => {
    const heard: unknown[] = [];
    const part = joinWrites(3, (err) => heard.push(err ?? 'ok'));
    part();
    part(new Error('first'));
    expect(heard).toEqual([]);
    part(new Error('second'));
    expect(heard).toHaveLength(1);
    expect(String(heard[0])).toMatch(/first/);
    const clean = joinWrites(2, (err) => heard.push(err ?? 'ok'));
    clean();
    clean();
    expect(heard[1]).toBe('ok');
  });
});

describe('dropTransientPairs', () => {
  const tput = (key: string): Op => ({ type: 'put', key, value: 'v', transient: true });
  const del = (key: string): Op => ({ type: 'del', key });
  const put = (key: string): Op => ({ type: 'put', key, value: 'w' });

  it('drops a transient put with the later del of its key, keeping everything else in order', () => {
    const ops = [tput('m1'), put('s'), tput('m2'), del('m1'), del('x')];
    expect(dropTransientPairs(ops)).toEqual([put('s'), tput('m2'), del('x')]);
  });

  it('keeps a pair that another write of the key separates, and returns ops untouched when nothing drops', () => {
    const separated = [tput('k'), put('k'), del('k')];
    expect(dropTransientPairs(separated)).toBe(separated);
    const plain = [put('a'), del('a'), del('b')];
    expect(dropTransientPairs(plain)).toBe(plain);
  });

  it('follows one rule for short writes and long batches alike: a del drops with the latest op of its key when that is a transient put', () => {
    const random = seededRandom(7);
    const kinds = [tput, del, put];
    for (let round = 0; round < 400; round++) {
      // Lengths on both sides of the switch from the look-back scan to the Map (32 ops).
      const ops = Array.from({ length: 1 + randomInt(random, 80) }, () => pick(random, kinds)(`k${randomInt(random, 6)}`));
      const gone = new Set<number>();
      ops.forEach((op, i) => {
        if (op.type !== 'del') return;
        const j = ops.slice(0, i).map((o) => o.key).lastIndexOf(op.key);
        const latest = ops[j];
        if (latest?.type === 'put' && latest.transient) gone.add(j).add(i);
      });
      expect(dropTransientPairs(ops), `ops ${JSON.stringify(ops)}`).toEqual(ops.filter((_, i) => !gone.has(i)));
    }
  });
});
