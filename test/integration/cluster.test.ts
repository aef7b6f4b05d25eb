import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../support/cluster.js';
import { spawn } from 'node:child_process';
import { CLI, runCli } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const counter = (id: string) => ({ type: 'counter', id });

describe('a 3-node cluster', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }]);

  beforeAll(async () => {
    await cluster.startAll();
  });

  afterAll(async () => {
    await cluster.destroy();
  });

  it('lists the same members, all up, from every node (cei nodes and the Members API)', async () => {
    const views = await Promise.all([0, 1, 2].map((i) => cluster.client(i).members()));
    for (const v of views) {
      expect(v.members.map((m) => m.id).sort()).toEqual([...cluster.ids].sort());
      expect(v.members.every((m) => m.status === 'up')).toBe(true);
      expect(v.fenced).toBe(false);
    }
    expect(views[1]!.members.find((m) => m.id === cluster.ids[0])).toMatchObject({ role: 'bootstrap', address: cluster.address(0) });
    const cli = await runCli(['nodes', '--node', cluster.address(2), '--json']);
    expect(cli.code).toBe(0);
    const parsed = JSON.parse(cli.stdout) as { node: string; members: Array<{ id: string; status: string }> };
    expect(parsed.node).toBe(cluster.ids[2]);
    expect(parsed.members).toHaveLength(3);
  });

  it('routes calls from any node to the owner, spreads owners over the nodes, and replicates each actor once more', async () => {
    for (let i = 0; i < 60; i++) await cluster.client(i % 3).tell(counter(`r-${i % 20}`), { add: 1 });
    const owners = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      // The same answer whichever node is asked.
      const infos = await Promise.all([0, 1, 2].map((n) => cluster.client(n).describe(counter(`r-${i}`))));
      expect(new Set(infos.map((d) => d.node)).size).toBe(1);
      const info = infos[0]!;
      expect(info.replicas).toHaveLength(1);
      expect(info.replicas[0]).not.toBe(info.node);
      expect(cluster.ids).toContain(info.node);
      owners.set(info.node, (owners.get(info.node) ?? 0) + 1);
      expect(await cluster.client((i + 1) % 3).ask(counter(`r-${i}`), { get: true })).toEqual({ value: 3, count: 3 });
    }
    expect(owners.size).toBe(3);
    const listed = await cluster.client(1).list({ type: 'counter', page_size: 1000 });
    expect(listed.actors.filter((a) => a.ref!.id.startsWith('r-'))).toHaveLength(20);
  });

  it('names each actor owner through Cluster.Owners from any node, as Describe does, and refuses bad refs', async () => {
    const refs = Array.from({ length: 20 }, (_, i) => counter(`r-${i}`));
    const described = await Promise.all(refs.map((r) => cluster.client(0).describe(r)));
    for (const n of [0, 1, 2]) {
      const reply = await cluster.client(n).owners(refs);
      expect(reply.node).toBe(cluster.ids[n]);
      expect(reply.owners).toEqual(described.map((d) => d.node));
    }
    // Addresses, for a client that sends each actor's calls to its owner.
    const addresses = await cluster.client(2).ownerAddresses(refs);
    expect(addresses).toEqual(described.map((d) => cluster.address(cluster.ids.indexOf(d.node))));

    const refused = async (req: Array<{ type: string; id: string }>) =>
      cluster.client(1).owners(req).then(
        () => undefined,
        (err: grpc.ServiceError) => err,
      );
    const bad = await refused([counter('ok'), { type: 'Bad Type', id: 'x' }]);
    expect(bad?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad?.details).toContain('refs[1].type');
    const tooMany = await refused(Array.from({ length: 10_001 }, (_, i) => counter(`m-${i}`)));
    expect(tooMany?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooMany?.details).toContain('at most 10000');
  });

  it('pages List across the nodes in one order', async () => {
    const seen: string[] = [];
    let token = '';
    for (let pages = 0; pages < 50; pages++) {
      const page = await cluster.client(pages % 3).list({ type: 'counter', page_size: 7, page_token: token });
      seen.push(...page.actors.map((a) => a.ref!.id));
      token = page.next_page_token;
      if (!token) break;
    }
    expect(seen.filter((id) => id.startsWith('r-'))).toHaveLength(20);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('fails over: SIGKILL of an owner, its actors answer from the replica with every acknowledged message', async () => {
    const info = await cluster.client(0).describe(counter('r-0'));
    const victim = cluster.ids.indexOf(info.node);
    const survivor = (victim + 1) % 3;
    await cluster.kill(victim, 'SIGKILL');
    const moved = await cluster.client(survivor).ask(counter('r-0'), { get: true }, 10_000, 20_000);
    expect(moved).toEqual({ value: 3, count: 3 });
    await cluster.waitForStatuses({ [cluster.ids[victim]!]: 'down' });
    const after = await cluster.client(survivor).describe(counter('r-0'));
    expect(after.node).not.toBe(info.node);
    for (let i = 0; i < 20; i++) expect(await cluster.client(survivor).ask(counter(`r-${i}`), { get: true })).toEqual({ value: 3, count: 3 });

    // It comes back as the same member, and takes its actors back by hand-off.
    const back = await cluster.start(victim);
    expect(back.id).toBe(info.node);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));
    await waitFor(async () => (await cluster.client(survivor).describe(counter('r-0'))).node === info.node, { what: 'r-0 to move back to its owner' });
    for (let i = 0; i < 20; i++) expect(await cluster.client(victim).ask(counter(`r-${i}`), { get: true })).toEqual({ value: 3, count: 3 });
  });
});

describe('a 5-node cluster', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }, { role: 'worker' }, { role: 'worker' }]);

  afterAll(async () => {
    await cluster.destroy();
  });

  it('grows by joins with hand-off, and shrinks by a graceful leave, with nothing lost', async () => {
    // Start with three, fill, then join two workers: actors move to them.
    await cluster.start(0);
    await Promise.all([cluster.start(1), cluster.start(2)]);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.slice(0, 3).map((id) => [id, 'up'])));
    for (let i = 0; i < 100; i++) await cluster.client(i % 3).tell(counter(`g-${i % 50}`), { add: 2 }, `g-msg-${i}`);
    await Promise.all([cluster.start(3), cluster.start(4)]);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));

    const ownersAfterJoin = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const info = await cluster.client(3).describe(counter(`g-${i}`));
      ownersAfterJoin.add(info.node);
      expect(await cluster.client(i % 5).ask(counter(`g-${i}`), { get: true }, 10_000, 20_000)).toEqual({ value: 4, count: 2 });
    }
    expect(ownersAfterJoin.has(cluster.ids[3]!) || ownersAfterJoin.has(cluster.ids[4]!)).toBe(true);

    // Worker 4 leaves gracefully (SIGTERM): exit 0, dropped from every view, its actors handed off.
    expect(await cluster.procs[4]!.stop()).toBe(0);
    await cluster.waitForStatuses({ [cluster.ids[4]!]: 'gone' });
    for (let i = 0; i < 50; i++) {
      const info = await cluster.client(0).describe(counter(`g-${i}`));
      expect(info.node).not.toBe(cluster.ids[4]);
      expect(await cluster.client(i % 4).ask(counter(`g-${i}`), { get: true })).toEqual({ value: 4, count: 2 });
    }
  });

  it('reports actors whose every copy went down with more than R-1 nodes (DATA_LOSS), and serves them again when a holder returns', async () => {
    await cluster.start(4);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));
    const workers = new Set([cluster.ids[3]!, cluster.ids[4]!]);
    const onlyOnWorkers: string[] = [];
    const elsewhere: string[] = [];
    for (let i = 0; i < 60; i++) {
      await cluster.client(0).tell(counter(`l-${i}`), { add: 3 }, `l-msg-${i}`);
      const info = await cluster.client(0).describe(counter(`l-${i}`));
      ([info.node, ...info.replicas].every((id) => workers.has(id)) ? onlyOnWorkers : elsewhere).push(`l-${i}`);
    }
    expect(onlyOnWorkers.length).toBeGreaterThan(0);

    // Both workers die at once: the voters keep their majority, but some actors have no copy left.
    await Promise.all([cluster.kill(3, 'SIGKILL'), cluster.kill(4, 'SIGKILL')]);
    await cluster.waitForStatuses({ [cluster.ids[3]!]: 'down', [cluster.ids[4]!]: 'down' });
    for (const id of onlyOnWorkers) {
      const err = await cluster.client(0).ask(counter(id), { get: true }, 5_000, 10_000).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, `${id} must not come back empty`).toBe(grpc.status.DATA_LOSS);
      expect(err?.details).toMatch(/every copy of counter\/l-\d+ was on/);
    }
    for (const id of elsewhere) expect(await cluster.client(1).ask(counter(id), { get: true }, 10_000, 20_000)).toEqual({ value: 3, count: 1 });

    // Every voter restarts in turn: what they know of the loss is on disk, not only in memory.
    for (const voter of [0, 1, 2]) {
      await cluster.kill(voter, 'SIGKILL');
      await cluster.start(voter);
      await cluster.waitForStatuses({ [cluster.ids[0]!]: 'up', [cluster.ids[1]!]: 'up', [cluster.ids[2]!]: 'up' });
    }
    for (const id of onlyOnWorkers) {
      const err = await cluster.client(0).ask(counter(id), { get: true }, 5_000, 10_000).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, `${id} must not come back empty after the voters restarted`).toBe(grpc.status.DATA_LOSS);
    }

    // A worker restarts on its data directory: the copies it holds are served again.
    await cluster.start(3);
    await cluster.start(4);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])));
    for (const id of onlyOnWorkers) {
      const got = await cluster.client(2).ask(counter(id), { get: true }, 10_000, 20_000);
      expect(got, `${id} (owner now ${(await cluster.client(2).describe(counter(id))).node})`).toEqual({ value: 3, count: 1 });
    }
  });
});

describe('a restarted member whose cluster is gone', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }]);

  afterAll(async () => {
    await cluster.destroy();
  });

  it('waits to rejoin, never forming a cluster alone, and says so at the default warn level of cei up', async () => {
    await cluster.startAll();
    await cluster.kill(1);
    await cluster.kill(0);
    const proc = spawn(process.execPath, [CLI, 'node', '--role=control', '--listen', cluster.address(1), '--data', cluster.dirs[1]!, '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      await waitFor(() => stderr.includes('still waiting to join the cluster'), { timeoutMs: 20_000, what: 'the waiting node to say why' });
      expect(stderr).toContain('this node was a member: it rejoins only through its seeds or the members it knew, never alone');
      expect(stderr).toContain(cluster.address(0));
      expect(stdout).not.toMatch(/^ready /m);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
