/**
 * EPU management with real processes: a bootstrap node hosts the registries, the provisioner and
 * the domain; a local site launches real `cei node --role=worker` processes that join the cluster,
 * announce their instance ids and heartbeat to their domain. A domain of npreserving preserve_n=3
 * reaches 3 RUNNING workers; a SIGKILLed worker is replaced; a reconfigure to 1 terminates the two
 * retirable ones; removing the domain leaves no worker process behind.
 *
 * Every worker process seen or recorded under the instance directory is SIGKILLed in afterAll,
 * whatever happened, and the bootstrap with them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DtrsClient } from '../../src/client-dtrs.js';
import { EpumClient } from '../../src/client-epum.js';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import type { DomainDescription } from '../../src/actors/epum/protocol.js';
import { CLI, removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const DEADLINE_MS = 20_000;

describe('EPU management with a local site and real workers', () => {
  let dir: string;
  let bootstrap: NodeProcess | undefined;
  let dtrs: DtrsClient;
  let epum: EpumClient;
  /** Every worker process seen: instance id -> pid. */
  const seen = new Map<string, number>();

  const instanceDir = (): string => join(dir, 'node', 'instances', 'here');

  /** Records the pid of every worker that has an instance directory now. */
  function scanWorkers(): void {
    if (!dir || !existsSync(instanceDir())) return;
    for (const name of readdirSync(instanceDir())) {
      try {
        const record = JSON.parse(readFileSync(join(instanceDir(), name, 'instance.json'), 'utf8')) as { pid?: number };
        if (typeof record.pid === 'number') seen.set(name, record.pid);
      } catch {
        // No record yet: no process was started for it.
      }
    }
  }

  const alive = (): string[] => [...seen].filter(([id, pid]) => isInstanceProcess(pid, id)).map(([id]) => id);

  beforeAll(async () => {
    expect(existsSync(CLI), 'run npm run build first').toBe(true);
    dir = tempDir('cei-epum-');
    // A user decision engine, loaded with --engines: it launches nothing and counts its decisions.
    const engines = join(dir, 'engines.mjs');
    writeFileSync(
      engines,
      `export default { name: 'counting', validateConf: (c) => ({ ok: true, conf: c }), initialState: () => ({ decisions: 0 }),
        decide: ({ state }) => ({ actions: [], state: { decisions: state.decisions + 1 } }) };\n`,
    );
    bootstrap = await startNode({ dataDir: join(dir, 'node'), role: 'bootstrap', readyTimeoutMs: DEADLINE_MS, args: ['--engines', engines] });
    dtrs = new DtrsClient(bootstrap.address);
    epum = new EpumClient(bootstrap.address);
  });

  afterAll(async () => {
    dtrs?.close();
    epum?.close();
    scanWorkers();
    for (const [id, pid] of seen) if (isInstanceProcess(pid, id)) signalInstance(pid, 'SIGKILL');
    await waitFor(() => alive().length === 0, { what: 'worker processes gone' });
    if (bootstrap) {
      bootstrap.kill('SIGKILL');
      await bootstrap.exited;
    }
    if (dir) removeDir(dir);
  });

  /** Waits until the domain's description satisfies `check`, failing fast on an instance that FAILED. */
  async function until(what: string, check: (d: DomainDescription) => boolean): Promise<DomainDescription> {
    let last: DomainDescription | undefined;
    try {
      await waitFor(
        async () => {
          last = await epum.describe('d', 5_000);
          scanWorkers();
          const failed = last.instances.find((i) => i.state === 'FAILED');
          if (failed) throw new Error(`${failed.instance_id} FAILED: ${failed.state_desc} ${failed.state_detail}`);
          return check(last);
        },
        { timeoutMs: DEADLINE_MS, what },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last?.instances.map((i) => [i.instance_id, i.state, i.health, i.health_reason]))}`);
    }
    return last!;
  }

  const runningIds = (d: DomainDescription): string[] => d.instances.filter((i) => i.state === 'RUNNING' && i.health === 'OK').map((i) => i.instance_id);
  const live = (d: DomainDescription) => d.instances.filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED');

  it('keeps 3 workers, replaces a killed one, shrinks retirable-first, and removes them all', async () => {
    await dtrs.addSite('here', { type: 'local', description: 'this machine' });
    await dtrs.addDt('worker', { sites: { here: {} } });

    const added = await epum.add({ id: 'd', config: { engine: 'npreserving', engine_conf: { preserve_n: 3, deployable_type: 'worker', site: 'here' } } });
    expect(added.created).toBe(true);
    let d = await until('3 RUNNING workers', (x) => runningIds(x).length === 3 && live(x).length === 3);
    // RUNNING means joined and announced; the workers heartbeat to their domain with their metrics.
    d = await until('every worker heard from', (x) => x.instances.every((i) => i.last_heartbeat !== undefined && i.metrics?.free_memory !== undefined));
    expect(d.sensors.cpu_load?.length).toBeGreaterThan(0);
    expect(alive().sort()).toEqual(runningIds(d).sort());

    // SIGKILL one worker: the domain replaces it (the provisioner sees the process gone, the cluster declares the node down).
    const victim = runningIds(d)[0]!;
    const killedAt = Date.now();
    signalInstance(seen.get(victim)!, 'SIGKILL');
    d = await until('a replacement RUNNING', (x) => runningIds(x).length === 3 && !runningIds(x).includes(victim));
    const repairMs = Date.now() - killedAt;
    const gone = d.instances.find((i) => i.instance_id === victim)!;
    expect(gone.state === 'TERMINATED' || gone.health === 'MISSING', JSON.stringify(gone)).toBe(true);
    expect(repairMs).toBeLessThan(DEADLINE_MS);
    if (process.env.CEI_TEST_VERBOSE) process.stderr.write(`time to repair: ${repairMs} ms\n`);

    // Shrink to 1, naming the two oldest survivors as retirable (newest-first would keep the oldest).
    const byAge = d.instances.filter((i) => runningIds(d).includes(i.instance_id)).sort((a, b) => a.launch_time - b.launch_time || (a.instance_id < b.instance_id ? -1 : 1));
    const retirable = byAge.slice(0, 2).map((i) => i.instance_id);
    const keeper = byAge[2]!.instance_id;
    const r = await epum.reconfigure('d', { engine_conf: { preserve_n: 1, retirable_nodes: retirable } });
    expect(r.pending_config.engine_conf).toMatchObject({ preserve_n: 1, retirable_nodes: retirable });
    d = await until('1 RUNNING, the retirable two terminated', (x) =>
      JSON.stringify(runningIds(x)) === JSON.stringify([keeper]) &&
      retirable.every((id) => x.instances.find((i) => i.instance_id === id)?.state === 'TERMINATED'),
    );
    expect(d.last_decision?.destroyed.sort()).toEqual([...retirable].sort());
    await waitFor(() => alive().join() === keeper, { timeoutMs: DEADLINE_MS, what: 'only the keeper\'s process runs' });

    // The CLI shows the same.
    const cli = await runCli(['domain', '--node', bootstrap!.address, 'describe', 'd', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as DomainDescription).instances.filter((i) => i.state === 'RUNNING').map((i) => i.instance_id)).toEqual([keeper]);

    // Remove: every worker terminated, the domain unlisted.
    expect(await epum.remove('d')).toEqual({ id: 'd', status: 'removing', terminating: 1 });
    await waitFor(async () => (await epum.list()).length === 0, { timeoutMs: DEADLINE_MS, what: 'the domain removed' });
    await waitFor(() => alive().length === 0, { timeoutMs: DEADLINE_MS, what: 'no worker process left' });
    // Terminated instances' directories are removed; the killed one's stays, with its log, as the
    // local driver keeps an instance that ended by itself (nobody asked to terminate it).
    expect(readdirSync(instanceDir())).toEqual([victim]);
    await expect(epum.describe('d')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('answers bad input with INVALID_ARGUMENT or NOT_FOUND, through the service and the CLI', async () => {
    await expect(epum.add({ id: 'x', config: { engine: 'nope' } })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: expect.stringMatching(/^unknown decision engine "nope"/),
    });
    await expect(epum.add({ id: 'x', config: { engine: 'npreserving', engine_conf: { preserve_n: 1, deployable_type: 'worker', site: 'nowhere' } } })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: 'engine_conf: site "nowhere" is not registered',
    });
    await expect(epum.add({ id: 'x', config: { engine: 'npreserving', engine_conf: { deployable_type: 'worker', site: 'here' } } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'engine_conf for "npreserving": missing required key "preserve_n"',
    });
    await expect(epum.add({ id: 'bad id', config: { engine: 'npreserving' } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^id: must be 1-63/),
    });
    const cli = await runCli(['domain', '--node', bootstrap!.address, 'add', 'x', '--set', 'engine=npreserving', '--set', 'engine_conf.preserve_n=1', '--set', 'engine_conf.deployable_type=nope', '--set', 'engine_conf.site=here']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe('error: engine_conf: deployable type "nope" is not registered (NOT_FOUND)\n');
    expect(await epum.list()).toEqual([]);
  });

  it('runs a decision engine loaded with --engines, and refuses a module that does not exist', async () => {
    await epum.add({ id: 'u', config: { engine: 'counting', tick_seconds: 0.05 } });
    await waitFor(async () => ((await epum.describe('u')).engine_state as { decisions: number }).decisions >= 3, { timeoutMs: DEADLINE_MS, what: 'the user engine deciding' });
    await epum.remove('u');
    await waitFor(async () => (await epum.list()).length === 0, { timeoutMs: DEADLINE_MS, what: 'the domain removed' });
    const missing = tempDir('cei-epum-missing-');
    try {
      const r = await runCli(['node', '--role=bootstrap', '--listen', '127.0.0.1:0', '--data', missing, '--engines', '/no/such.js']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/--engines \/no\/such\.js: no such file/);
      expect(readdirSync(missing)).toEqual([]);
    } finally {
      removeDir(missing);
    }
  });
});
