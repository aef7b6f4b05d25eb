/**
 * EPU management is highly available: a bootstrap and two control nodes (the three voters) host the
 * registry, the provisioner and the domain actor; a local site launches real `cei node
 * --role=worker` processes into one shared directory (the site's `data_dir`), so whichever node
 * hosts the provisioner after a fail-over finds and re-adopts the same workers. Killing two voters at
 * once would lose the majority, so the test SIGKILLs the node hosting `epum/<domain>`, restarts it on
 * its data directory and waits for every node to be up, then SIGKILLs the node that hosts
 * `provisioner/main` at that point. After each kill the domain must again hold exactly preserve_n
 * RUNNING instances, and the worker processes alive on this machine must be exactly those instances:
 * none orphaned (a process no RUNNING instance accounts for), none doubled (two processes for one
 * instance id). Removing the domain then leaves no worker process behind.
 *
 * Worker processes are found by scanning /proc for `--instance-id` command lines whose `--data` lies
 * under the site's directory; every one found is SIGKILLed in afterAll, whatever happened, and the
 * cluster with them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { DtrsClient } from '../../src/client-dtrs.js';
import { EpumClient } from '../../src/client-epum.js';
import { ProvisionerClient } from '../../src/client-provisioner.js';
import { signalInstance } from '../../src/iaas/local-process.js';
import type { DomainDescription } from '../../src/actors/epum/protocol.js';
import { TestCluster } from '../support/cluster.js';
import { CLI, removeDir, tempDir } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const DEADLINE_MS = 20_000;
const DOMAIN = 'ha';
const SIZE = 2;

interface WorkerProcess {
  pid: number;
  instanceId: string;
}

/** Every live worker process whose --data lies under `siteDir` (Linux /proc). */
function workerProcesses(siteDir: string): WorkerProcess[] {
  const out: WorkerProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const at = argv.indexOf('--instance-id');
    const dataAt = argv.indexOf('--data');
    if (at < 0 || dataAt < 0 || !argv[dataAt + 1]?.startsWith(siteDir)) continue;
    out.push({ pid: Number(name), instanceId: argv[at + 1]! });
  }
  return out;
}

describe('EPU management fail-over with real workers', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'control' }, { role: 'control' }]);
  let siteDir: string;
  const epums = new Map<number, EpumClient>();
  const log: string[] = [];

  const epum = (i: number): EpumClient => {
    let c = epums.get(i);
    if (!c) epums.set(i, (c = new EpumClient(cluster.address(i))));
    return c;
  };
  const dropClient = (i: number): void => {
    epums.get(i)?.close();
    epums.delete(i);
  };

  beforeAll(async () => {
    expect(existsSync(CLI), 'run npm run build first').toBe(true);
    expect(existsSync('/proc/self/cmdline'), 'this test scans /proc for worker processes').toBe(true);
    siteDir = tempDir('cei-epum-ha-workers-');
    await cluster.startAll();
  });

  afterAll(async () => {
    for (const i of [...epums.keys()]) dropClient(i);
    if (siteDir) {
      for (const w of workerProcesses(siteDir)) signalInstance(w.pid, 'SIGKILL');
      await waitFor(() => workerProcesses(siteDir).length === 0, { what: 'worker processes gone' }).catch(() => undefined);
    }
    await cluster.destroy();
    if (siteDir) removeDir(siteDir);
    if (process.env.CEI_TEST_VERBOSE) process.stderr.write(`${log.join('\n')}\n`);
  });

  const runningIds = (d: DomainDescription): string[] =>
    d.instances
      .filter((i) => i.state === 'RUNNING' && i.health === 'OK')
      .map((i) => i.instance_id)
      .sort();
  const live = (d: DomainDescription) => d.instances.filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED' && i.state !== 'REJECTED');

  /** The index of the node that hosts `type/id`, as a live node describes it. */
  async function ownerOf(type: string, id: string): Promise<number> {
    return waitFor(
      async () => {
        for (const i of cluster.live()) {
          const info = await cluster.client(i).describe({ type, id }, 2_000).catch(() => undefined);
          const at = info?.node ? cluster.ids.indexOf(info.node) : -1;
          if (at >= 0 && cluster.live().includes(at)) return at + 1; // 0 is falsy: shifted by one
        }
        return 0;
      },
      { timeoutMs: DEADLINE_MS, what: `the owner of ${type}/${id}` },
    ).then((n) => n - 1);
  }

  /**
   * Waits until the domain, described through any live node, has ticked since `since` (so its actor
   * runs again after a fail-over) and holds exactly SIZE RUNNING instances, nothing else live; the
   * provisioner, asked through the same node, reports those instances RUNNING; and the worker
   * processes are exactly those instances, one each.
   */
  async function converged(what: string, since = 0): Promise<DomainDescription> {
    let last: DomainDescription | undefined;
    let procs: WorkerProcess[] = [];
    try {
      await waitFor(
        async () => {
          let via = -1;
          for (const i of cluster.live()) {
            last = await epum(i).describe(DOMAIN, 2_000).catch(() => undefined);
            via = i;
            if (last) break;
          }
          if (!last || (last.last_tick_at ?? 0) <= since) return false;
          const failed = last.instances.find((i) => i.state === 'FAILED');
          if (failed) throw new Error(`${failed.instance_id} FAILED: ${failed.state_desc} ${failed.state_detail}`);
          procs = workerProcesses(siteDir);
          const running = runningIds(last);
          if (running.length !== SIZE || live(last).length !== SIZE) return false;
          if (JSON.stringify(procs.map((p) => p.instanceId).sort()) !== JSON.stringify(running)) return false;
          const provisioner = new ProvisionerClient(cluster.address(via));
          try {
            const { instances } = await provisioner.describe(running, 2_000);
            return instances.length === SIZE && instances.every((i) => i.state === 'RUNNING');
          } finally {
            provisioner.close();
          }
        },
        { timeoutMs: DEADLINE_MS, what },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}; last: ${JSON.stringify(last?.instances.map((i) => [i.instance_id, i.state, i.health, i.state_desc]))}; processes: ${JSON.stringify(procs)}`,
      );
    }
    return last!;
  }

  /** SIGKILLs node i, restarts it on its data directory and port, and waits until every node sees all three up. */
  async function killAndRecover(i: number, why: string): Promise<void> {
    const t0 = Date.now();
    dropClient(i);
    await cluster.kill(i, 'SIGKILL');
    const killedAt = Date.now();
    const after = await converged(`${SIZE} RUNNING after killing node ${i} (${why})`, killedAt);
    const moved = { epum: await ownerOf('epum', DOMAIN), provisioner: await ownerOf('provisioner', 'main') };
    expect(moved.epum).not.toBe(i);
    expect(moved.provisioner).not.toBe(i);
    log.push(`killed node ${i} (${why}): converged in ${Date.now() - t0} ms, running ${runningIds(after).join(',')}; now epum on ${moved.epum}, provisioner on ${moved.provisioner}`);
    await cluster.start(i);
    await cluster.waitForStatuses(Object.fromEntries(cluster.ids.map((id) => [id, 'up'])), DEADLINE_MS);
    log.push(`node ${i} back, all up at ${Date.now() - t0} ms`);
  }

  it(`keeps ${SIZE} workers, none orphaned or doubled, through SIGKILL of the epum and provisioner hosts`, async () => {
    const dtrs = new DtrsClient(cluster.address(0));
    try {
      await dtrs.addSite('here', { type: 'local', description: 'this machine, shared instance directory', settings: { data_dir: siteDir } });
      await dtrs.addDt('worker', { sites: { here: {} } });
    } finally {
      dtrs.close();
    }
    const added = await epum(0).add({
      id: DOMAIN,
      config: { engine: 'npreserving', engine_conf: { preserve_n: SIZE, deployable_type: 'worker', site: 'here' }, tick_seconds: 0.2 },
    });
    expect(added.created).toBe(true);
    const before = await converged(`${SIZE} RUNNING workers`);
    const original = runningIds(before);

    // 1. The node hosting the domain actor.
    const epumHost = await ownerOf('epum', DOMAIN);
    log.push(`epum/${DOMAIN} on node ${epumHost}, provisioner/main on node ${await ownerOf('provisioner', 'main')}`);
    await killAndRecover(epumHost, `host of epum/${DOMAIN}`);

    // 2. The node hosting the provisioner now (the same node again if the provisioner lived there too, or moved back).
    const provisionerHost = await ownerOf('provisioner', 'main');
    await killAndRecover(provisionerHost, 'host of provisioner/main');

    // The workers survived both fail-overs: the same instances, each still one process.
    const after = await converged(`${SIZE} RUNNING at the end`);
    expect(runningIds(after)).toEqual(original);
    const procs = workerProcesses(siteDir);
    expect(procs.map((p) => p.instanceId).sort()).toEqual(original);
    expect(new Set(procs.map((p) => p.pid)).size).toBe(SIZE);

    // Remove: every worker terminated, none left behind.
    const node = cluster.live()[0]!;
    expect(await epum(node).remove(DOMAIN)).toMatchObject({ id: DOMAIN, status: 'removing', terminating: SIZE });
    await waitFor(async () => (await epum(node).list(2_000)).length === 0, { timeoutMs: DEADLINE_MS, what: 'the domain removed' });
    await waitFor(() => workerProcesses(siteDir).length === 0, { timeoutMs: DEADLINE_MS, what: 'no worker process left' });
  }, 60_000);
});
