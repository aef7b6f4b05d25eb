import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreOpenError } from '../../../src/errors.js';
import { FORMAT_VERSION, Store, byteOrder, keys } from '../../../src/runtime/store.js';

const dirs: string[] = [];
const open: Store[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cei-unit-store-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir: string): Promise<Store> {
  const store = await Store.open(dir);
  open.push(store);
  return store;
}

/** Everything in the LevelDB under `<dir>/db`, read with a plain Level handle. */
async function rawEntries(dir: string): Promise<Array<[string, string]>> {
  const db = new Level<string, string>(join(dir, 'db'));
  await db.open();
  try {
    return await db.iterator().all();
  } finally {
    await db.close();
  }
}

async function rawPut(dir: string, entries: Array<[string, string]>): Promise<void> {
  const db = new Level<string, string>(join(dir, 'db'));
  await db.open();
  try {
    await db.batch(entries.map(([key, value]) => ({ type: 'put' as const, key, value })));
  } finally {
    await db.close();
  }
}

afterEach(async () => {
  for (const store of open.splice(0)) await store.close().catch(() => {});
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('Store.open', () => {
  it('creates a store in a new directory, with a node id and the format version', async () => {
    const dir = join(tempDir(), 'nested', 'data');
    const store = await openStore(dir);
    expect(store.nodeId).toMatch(/^node-[0-9a-f]{10}$/);
    expect(store.dir).toBe(dir);
    expect(await store.get(keys.format)).toBe(FORMAT_VERSION);
    expect(await store.get(keys.nodeId)).toBe(store.nodeId);
  });

  it('keeps the node id across reopen, and gives another directory another id', async () => {
    const dir = tempDir();
    const first = await openStore(dir);
    const id = first.nodeId;
    await first.close();
    const again = await openStore(dir);
    expect(again.nodeId).toBe(id);
    const other = await openStore(tempDir());
    expect(other.nodeId).not.toBe(id);
  });

  it('refuses a directory that another Store has open, saying it is in use', async () => {
    const dir = tempDir();
    const holder = await openStore(dir);
    const err = await Store.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as StoreOpenError).message).toMatch(/in use/);
    expect((err as StoreOpenError).message).toContain(dir);
    expect((err as StoreOpenError).code).toBe('FAILED_PRECONDITION');
    // The holder is unaffected.
    await holder.write([{ type: 'put', key: 'z\x00probe', value: '1' }], true);
    expect(await holder.get('z\x00probe')).toBe('1');
  });

  it('opens the directory once its holder closed it', async () => {
    const dir = tempDir();
    const holder = await openStore(dir);
    await expect(Store.open(dir)).rejects.toBeInstanceOf(StoreOpenError);
    await holder.close();
    const next = await openStore(dir);
    expect(next.nodeId).toBe(holder.nodeId);
  });

  it('refuses a LevelDB that is not a cei store and leaves it untouched', async () => {
    const dir = tempDir();
    const foreign: Array<[string, string]> = [
      ['customer:1', '{"name":"ada"}'],
      ['customer:2', '{"name":"grace"}'],
    ];
    await rawPut(dir, foreign);
    const err = await Store.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as Error).message).toMatch(/not cei's/);
    expect((err as Error).message).toMatch(/left untouched/);
    // Nothing was added (no format, no node id) and the lock was released.
    expect(await rawEntries(dir)).toEqual(foreign);
  });

  it('refuses a store of another format version and leaves it untouched', async () => {
    const dir = tempDir();
    await rawPut(dir, [
      [keys.format, '999'],
      [keys.nodeId, 'node-0123456789'],
    ]);
    await expect(Store.open(dir)).rejects.toThrow(/format 999/);
    expect(await rawEntries(dir)).toEqual([
      [keys.format, '999'],
      [keys.nodeId, 'node-0123456789'],
    ]);
  });

  it('refuses a store whose node id is missing or malformed', async () => {
    const dir = tempDir();
    await rawPut(dir, [[keys.format, FORMAT_VERSION]]);
    await expect(Store.open(dir)).rejects.toThrow(/no valid node id/);
    await rawPut(dir, [[keys.nodeId, 'not-a-node-id']]);
    await expect(Store.open(dir)).rejects.toThrow(/no valid node id/);
  });

  it('refuses a data directory path that cannot be created', async () => {
    const dir = tempDir();
    await rawPut(dir, [['k', 'v']]);
    // A regular file where a directory is needed.
    const blocked = join(dir, 'db', 'CURRENT', 'sub');
    await expect(Store.open(blocked)).rejects.toBeInstanceOf(StoreOpenError);
  });
});

/** Counts the store's iterator reads from now on: steps (nextv calls) and the entries they brought. */
function countReads(store: Store): { steps: number; entries: number } {
  const reads = { steps: 0, entries: 0 };
  const iterator = store.db.iterator.bind(store.db);
  store.db.iterator = ((...args: Parameters<typeof iterator>) => {
    const it = iterator(...args);
    const nextv = it.nextv.bind(it);
    it.nextv = (async (...a: Parameters<typeof nextv>) => {
      reads.steps++;
      const entries = await nextv(...a);
      reads.entries += entries.length;
      return entries;
    }) as typeof it.nextv;
    return it;
  }) as typeof store.db.iterator;
  return reads;
}

describe('Store reads', () => {
  it('scans exactly the keys under a prefix, in key order, with after and limit', async () => {
    const store = await openStore(tempDir());
    const prefix = 'a\x00t\x00x\x00';
    await store.write(
      [
        { type: 'put', key: `${prefix}m\x00${'2'.padStart(16, '0')}`, value: 'two' },
        { type: 'put', key: `${prefix}m\x00${'1'.padStart(16, '0')}`, value: 'one' },
        { type: 'put', key: `${prefix}s`, value: 'state' },
        // Neighbours that share a textual prefix but not the key prefix.
        { type: 'put', key: 'a\x00t\x00xy\x00s', value: 'other actor' },
        { type: 'put', key: 'a\x00t\x00w\x00s', value: 'before' },
      ],
      true,
    );
    const all = await store.scan(prefix);
    expect(all.map(([, v]) => v)).toEqual(['one', 'two', 'state']);
    const afterFirst = await store.scan(prefix, { after: all[0]![0] });
    expect(afterFirst.map(([, v]) => v)).toEqual(['two', 'state']);
    expect(await store.scanKeys(prefix, { limit: 1 })).toEqual([all[0]![0]]);
    expect(await store.scanKeys(`${prefix}m\x00`)).toHaveLength(2);
  });

  it('scanMany gives each prefix what scan gives it, in the prefixes\' order, also past a chunk of entries', async () => {
    const store = await openStore(tempDir());
    const actor = (id: string): string => `a\x00t\x00${id}\x00`;
    const ops: Array<{ type: 'put'; key: string; value: string }> = [];
    // x has more entries than one step of the iterator reads; xy shares x's text but not its prefix.
    for (let k = 0; k < 40; k++) ops.push({ type: 'put', key: `${actor('x')}d\x00${String(k).padStart(4, '0')}`, value: `x${k}` });
    ops.push({ type: 'put', key: `${actor('x')}s`, value: 'x state' });
    ops.push({ type: 'put', key: `${actor('xy')}s`, value: 'xy state' });
    for (let n = 0; n < 30; n++) ops.push({ type: 'put', key: `${actor(`n${n}`)}s`, value: `n${n}` });
    await store.write(ops, true);
    const prefixes = [actor('xy'), actor('missing'), actor('x'), ...Array.from({ length: 30 }, (_, n) => actor(`n${29 - n}`)), 'b\x00'];
    const many = await store.scanMany(prefixes);
    expect(many).toEqual(await Promise.all(prefixes.map((p) => store.scan(p))));
    expect(many[2]).toHaveLength(41);
    expect(many[1]).toEqual([]);
    expect(await store.scanMany([])).toEqual([]);
  });

  it('scanMany reads neighbouring prefixes, and prefixes past the end of the store, from one read', async () => {
    const store = await openStore(tempDir());
    const actor = (id: string): string => `a\x00t\x00${id}\x00`;
    // Ten neighbours of two entries each: five of them fit in one step of an iterator.
    const ids = Array.from({ length: 10 }, (_, n) => `n${n}`);
    await store.write(ids.flatMap((id) => [{ type: 'put' as const, key: `${actor(id)}d\x00m`, value: `${id} d` }, { type: 'put' as const, key: `${actor(id)}s`, value: `${id} s` }]), true);
    const reads = countReads(store);
    // Forty prefixes past the end of the store (a join's new node): one read per iterator, four iterators.
    const missing = Array.from({ length: 40 }, (_, n) => actor(`z${n}`));
    expect(await store.scanMany(missing)).toEqual(missing.map(() => []));
    expect(reads.steps).toBe(4);
    // The ten neighbours, with a missing one and a duplicate among them: 20 entries, two steps and the
    // end of the store a read per iterator (four), not a read per prefix (twelve).
    reads.steps = 0;
    const prefixes = [...ids.map(actor), actor('n4a'), actor('n2')];
    const many = await store.scanMany(prefixes);
    expect(many).toEqual(await Promise.all(prefixes.map((p) => store.scan(p))));
    expect(many[11]).toEqual(many[2]);
    expect(many[10]).toEqual([]);
    expect(reads.steps).toBeLessThanOrEqual(4);
  });

  it('scanMany with a limit gives each prefix its first entries only, without reading the rest', async () => {
    const store = await openStore(tempDir());
    const mail = (id: string): string => `a\x00t\x00${id}\x00m\x00`;
    // A backlog of 200 messages under one prefix, one message under the next, nothing under a third.
    const ops = Array.from({ length: 200 }, (_, k) => ({ type: 'put' as const, key: `${mail('busy')}${String(k).padStart(4, '0')}`, value: `m${k}` }));
    ops.push({ type: 'put', key: `${mail('calm')}0001`, value: 'one' });
    await store.write(ops, true);
    const reads = countReads(store);
    const prefixes = [mail('busy'), mail('calm'), mail('idle'), mail('busy')];
    const first = await store.scanMany(prefixes, { limit: 1 });
    expect(first.map((entries) => entries.map(([, v]) => v))).toEqual([['m0'], ['one'], [], ['m0']]);
    // One step of an iterator per prefix at most, not the backlog.
    expect(reads.entries).toBeLessThan(4 * 16);
    reads.entries = 0;
    expect((await store.scanMany(prefixes)).map((entries) => entries.length)).toEqual([200, 1, 0, 200]);
    expect(reads.entries).toBeGreaterThanOrEqual(200);
  });

  it('byteOrder orders keys as LevelDB does, by their UTF-8 bytes', () => {
    const samples = ['', 'a', 'ab', 'b', '\x00', 'a\x00b', '\uFF01', '\uFFFD', '\uE000', '\u{1F600}', '\u{1F600}a', '\u{10FFFF}', '\u00e9', 'z'];
    const bytes = (k: string): Buffer => Buffer.from(k, 'utf8');
    for (const a of samples) for (const b of samples) expect(Math.sign(byteOrder(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(Math.sign(Buffer.compare(bytes(a), bytes(b))));
  });

  it('scanMany finds ids whose UTF-16 order is not their UTF-8 byte order', async () => {
    const store = await openStore(tempDir());
    const actor = (id: string): string => `a\x00t\x00${id}\x00`;
    // U+1F600 sorts before U+FF01 as UTF-16 units and after it as UTF-8 bytes; five ids put the two
    // next to each other in one of scanMany's iterators.
    const ids = ['\u{1F600}', '\uFF01', 'a', 'b', '\uFFFD'];
    await store.write(ids.map((id) => ({ type: 'put' as const, key: `${actor(id)}s`, value: id })), true);
    const many = await store.scanMany(ids.map(actor));
    expect(many.map((entries) => entries.map(([, v]) => v))).toEqual(ids.map((id) => [id]));
  });
});
