import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Level } from 'level';
import { removeDir, tempDir } from '../../support/node-process.js';
import { RunStore, withRunStore, type ServiceRecord } from '../../../src/launch/run-store.js';
import { plainProgress } from '../../../src/launch/progress.js';

const homes: string[] = [];
afterAll(() => homes.forEach(removeDir));

const service = (name: string, levelIndex: number): ServiceRecord => ({
  run: 'r1',
  name,
  level: `l${levelIndex}`,
  levelIndex,
  kind: 'node',
  state: 'started',
  attributes: { name },
  updatedAt: 0,
});

describe('RunStore', () => {
  it('keeps runs and their services in level order across opens, and holds the home for one command at a time', async () => {
    const home = tempDir('cei-runs-');
    homes.push(home);
    await withRunStore(home, async (store) => {
      expect(await store.getRun('r1')).toBeUndefined();
      await expect(store.requireRun('r1')).rejects.toThrow(/no run "r1"/);
      await store.putRun({ name: 'r1', plan: '/p.yaml', planName: 'p', vars: { a: '1' }, dir: '/d', state: 'booting', createdAt: 1, updatedAt: 1 });
      await store.putRun({ name: 'r10', plan: '/p.yaml', planName: 'p', vars: {}, dir: '/d2', state: 'up', createdAt: 1, updatedAt: 1 });
      // Level 10 after level 2: keys sort by the padded level index, then the name.
      await store.putService(service('late', 10));
      await store.putService(service('b', 2));
      await store.putService(service('a', 2));
      await expect(RunStore.open(home)).rejects.toThrow(/is another cei command using this home/);
    });
    await withRunStore(home, async (store) => {
      expect((await store.listRuns()).map((r) => [r.name, r.state])).toEqual([
        ['r1', 'booting'],
        ['r10', 'up'],
      ]);
      expect((await store.services('r1')).map((s) => s.name)).toEqual(['a', 'b', 'late']);
      expect(await store.services('r10')).toEqual([]);
      await store.deleteService(service('b', 2));
      expect((await store.services('r1')).map((s) => s.name)).toEqual(['a', 'late']);
    });
  });
});

describe('RunStore on damaged records', () => {
  it('refuses a record that is not JSON or breaks its schema, naming the entry and the field, and reads the sound ones', async () => {
    const home = tempDir('cei-runs-');
    homes.push(home);
    await withRunStore(home, async (store) => {
      await store.putRun({ name: 'ok', plan: '/p.yaml', planName: 'p', vars: {}, dir: '/d', state: 'up', createdAt: 1, updatedAt: 1 });
      await store.putService({ ...service('a', 0), run: 'ok' });
    });
    const db = new Level<string, string>(join(home, 'runs.db'), { valueEncoding: 'utf8' });
    await db.put('run/bad', JSON.stringify({ name: 'bad', plan: '/p.yaml', planName: 'p', vars: {}, dir: '/d', state: 'sleeping', createdAt: 1, updatedAt: 1 }));
    await db.put('svc/bad/000/x', '{"run": "bad", "name": ');
    await db.put('svc/odd/000/y', JSON.stringify({ ...service('y', 0), run: 'odd', pid: -3 }));
    await db.close();

    await withRunStore(home, async (store) => {
      expect((await store.getRun('ok'))?.state).toBe('up');
      expect((await store.services('ok')).map((s) => s.name)).toEqual(['a']);
      await expect(store.getRun('bad')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/damaged entry "run\/bad": state: /) });
      await expect(store.listRuns()).rejects.toThrow(/damaged entry "run\/bad"/);
      await expect(store.services('bad')).rejects.toThrow(/damaged entry "svc\/bad\/000\/x": not JSON/);
      await expect(store.services('odd')).rejects.toThrow(/damaged entry "svc\/odd\/000\/y": pid: /);
    });
  });
});

describe('plainProgress', () => {
  it('writes a level line only when a count changed, and a closing line', () => {
    const out: string[] = [];
    const p = plainProgress((s) => out.push(s));
    const level = { level: 'seed', index: 0, total: 2, started: 1, verified: 0, failed: 0, kept: 0, elapsedMs: 100 };
    p.level(level);
    p.level({ ...level, elapsedMs: 600 });
    p.level({ ...level, verified: 1, kept: 1, elapsedMs: 900 });
    p.levelDone({ ...level, started: 2, verified: 1, failed: 1, elapsedMs: 1500 });
    expect(out).toEqual([
      'level 1 seed: 1/2 started, 0/2 verified 0.1s\n',
      'level 1 seed: 1/2 started, 1/2 verified (1 kept) 0.9s\n',
      'level 1 seed: 2/2 started, 1/2 verified, 1 failed 1.5s FAILED\n',
    ]);
  });
});
