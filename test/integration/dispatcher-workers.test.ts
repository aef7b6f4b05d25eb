/**
 * The process dispatcher with real worker processes.
 *
 * 1. Two workers of 4 slots run 6 `sleep` processes. The worker that hosts the one with restart mode
 *    NEVER is SIGKILLed: that one is FAILED, the others of the dead worker go to a later round, 2 of
 *    them fit on the live worker and the last one WAITS, while the live worker's own processes keep
 *    running in their round. The dead worker's `sleep` children must be gone. The worker comes back
 *    on its data directory and the queue drains to 6 RUNNING.
 * 2. A cluster with no worker and an EPU domain `pd_default` (npreserving, preserve_n 0) on a local
 *    site: 3 scheduled processes make the dispatcher grow the domain, the provisioner starts real
 *    `cei node --role=worker` processes and the processes run on them; once they are terminated the
 *    domain is shrunk back to 0 and its worker processes end.
 *
 * Every process a test may leave (workers the local driver started detached, `sleep` children of a
 * killed worker) is SIGKILLed by pid in afterAll.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { DtrsClient } from '../../src/client-dtrs.js';
import { EpumClient } from '../../src/client-epum.js';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import type { ProcessRecord } from '../../src/actors/dispatcher/core.js';
import type { DescribeReply } from '../../src/actors/ee-agent/protocol.js';
import type { RoleReply } from '../../src/actors/role-reply.js';
import { TestCluster } from '../support/cluster.js';
import { CLI } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const DEADLINE_MS = 20_000;
/** In the environment of every sleep this file starts, so that afterAll finds any left behind. */
const MARK = `CEI_TEST_DISPATCHER_WORKERS=${process.pid}-${Date.now()}`;
const SLEEPER = { id: 'sleeper', type: 'exec', executable: { argv: ['sleep', '600'], protocol: 'none', env: { CEI_TEST_DISPATCHER_WORKERS: MARK.split('=')[1]! } } };

/** Pids of live processes started by this file (with MARK in their environment). */
function marked(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(MARK)) out.push(Number(name));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out;
}

/** SIGKILLs every process this file started that is still running; resolves once none is left. */
async function killMarked(): Promise<void> {
  for (const pid of marked()) if (runs(pid, 'sleep')) process.kill(pid, 'SIGKILL');
  await waitFor(() => marked().every((pid) => !runs(pid, 'sleep')), { what: 'no sleep process of this file left' });
}

/** Whether `pid` is a live process running `program` (not a reused pid). */
function runs(pid: number, program: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie (state Z) is dead, only not yet reaped.
    return argv[0] === program && !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

async function agentOf(cluster: TestCluster, i: number): Promise<DescribeReply> {
  const r = await cluster.client(i).ask<RoleReply<DescribeReply>>({ type: 'ee-agent', id: cluster.ids[i]! }, { describe: true }, 5_000, 10_000);
  if (!r.ok) throw new Error(`ee-agent describe: ${r.error.message}`);
  return r.value;
}

/** waitFor for a predicate that answers a value once the wait is over, and undefined before. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = DEADLINE_MS): Promise<T> {
  return (await waitFor(fn, { timeoutMs, what })) as T;
}

const summary = (ps: ProcessRecord[]) => ps.map((p) => `${p.upid}:${p.state}/r${p.round}@${p.assigned?.nodeId ?? '-'}`).join(' ');

describe('the dispatcher with real workers', () => {
  describe('2 workers x 4 slots, 6 processes, one worker SIGKILLed', () => {
    const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'worker', args: ['--slots', '4'] }, { role: 'worker', args: ['--slots', '4'] }]);
    let dispatcher: DispatcherClient;

    beforeAll(async () => {
      expect(existsSync(CLI), 'run npx tsc -p tsconfig.build.json first').toBe(true);
      await cluster.startAll();
      dispatcher = new DispatcherClient(cluster.address(0));
      await waitFor(async () => (await dispatcher.status()).agents.length === 2, { timeoutMs: DEADLINE_MS, what: 'two agents heartbeating' });
    }, 60_000);

    afterAll(async () => {
      dispatcher?.close();
      await cluster.destroy();
      await killMarked();
    });

    it('places the dead worker\'s processes again, fails the NEVER one, queues the overflow and drains it', { timeout: 60_000 }, async () => {
      await dispatcher.createDefinition(SLEEPER);
      // The NEVER one first: matching fills the busiest worker first, so it shares a worker with 3 others.
      const upids = ['never', 'p1', 'p2', 'p3', 'p4', 'p5'];
      for (const upid of upids) await dispatcher.schedule({ upid, definitionId: SLEEPER.id, ...(upid === 'never' ? { restartMode: 'NEVER' } : {}) });
      const all = async () => (await dispatcher.list()).sort((a, b) => (a.upid < b.upid ? -1 : 1));
      let ps = await until('6 processes RUNNING', async () => {
        const l = await all();
        return l.length === 6 && l.every((p) => p.state === 'RUNNING') ? l : undefined;
      });

      const victimNode = ps.find((p) => p.upid === 'never')!.assigned!.nodeId;
      const victim = cluster.ids.indexOf(victimNode);
      const survivor = victim === 1 ? 2 : 1;
      expect(victim).toBeGreaterThan(0);
      const onVictim = ps.filter((p) => p.assigned!.nodeId === victimNode);
      const onSurvivor = ps.filter((p) => p.assigned!.nodeId === cluster.ids[survivor]);
      expect(onVictim.length, summary(ps)).toBe(4);
      expect(onSurvivor.length, summary(ps)).toBe(2);

      // The pids of the victim's sleeps, from its agent.
      const described = await until('the victim agent reporting 4 pids', async () => {
        const d = await agentOf(cluster, victim);
        return d.processes.length === 4 && d.processes.every((p) => p.state === 'RUNNING' && p.pid !== undefined) ? d : undefined;
      });
      const victimPids = described.processes.map((p) => p.pid!);
      expect(victimPids.every((pid) => runs(pid, 'sleep'))).toBe(true);

      await cluster.kill(victim);

      // The NEVER one FAILED; 3 others in a later round: 2 RUNNING on the survivor, 1 WAITING; the survivor's own untouched.
      ps = await until('the victim\'s processes placed again or waiting', async () => {
        const l = await all();
        const moved = l.filter((p) => onVictim.some((o) => o.upid === p.upid && o.upid !== 'never'));
        const ok =
          l.find((p) => p.upid === 'never')!.state === 'FAILED' &&
          moved.every((p) => p.round > 0) &&
          moved.filter((p) => p.state === 'RUNNING' && p.assigned?.nodeId === cluster.ids[survivor]).length === 2 &&
          moved.filter((p) => p.state === 'WAITING').length === 1;
        return ok ? l : undefined;
      });
      for (const p of onSurvivor) {
        const now = ps.find((x) => x.upid === p.upid)!;
        expect(now, summary(ps)).toMatchObject({ state: 'RUNNING', round: p.round, assigned: { nodeId: cluster.ids[survivor] } });
      }
      expect(ps.find((p) => p.upid === 'never')!.lastError).toMatch(/agent .* (missing|evacuated)/);

      // A SIGKILLed worker must not leave its processes running.
      await waitFor(() => victimPids.every((pid) => !runs(pid, 'sleep')), {
        timeoutMs: 10_000,
        what: `the killed worker's sleep processes ${victimPids.join(', ')} gone`,
      });

      // The worker comes back on its data directory: the waiting one is placed, 5 RUNNING.
      await cluster.start(victim);
      ps = await until('the queue drained: 5 RUNNING', async () => {
        const l = await all();
        return l.filter((p) => p.state === 'RUNNING').length === 5 && l.find((p) => p.upid === 'never')!.state === 'FAILED' ? l : undefined;
      });
      expect(ps.filter((p) => p.state === 'RUNNING' && p.assigned!.nodeId === victimNode)).toHaveLength(1);

      // The restarted agent forgot the old rounds (reported, then cleaned up): only the new one is left.
      await waitFor(async () => (await agentOf(cluster, victim)).processes.length === 1, { timeoutMs: DEADLINE_MS, what: 'the restarted agent holding only its new process' });

      for (const upid of upids) await dispatcher.terminate(upid);
      await waitFor(async () => (await all()).every((p) => p.state === 'TERMINATED' || p.state === 'FAILED'), { timeoutMs: DEADLINE_MS, what: 'all terminated' });
      await waitFor(() => marked().every((pid) => !runs(pid, 'sleep')), { timeoutMs: DEADLINE_MS, what: 'every sleep process gone' });
    });
  });

  describe('elastic capacity through EPU domain pd_default', () => {
    const cluster = new TestCluster([{ role: 'bootstrap' }]);
    let dispatcher: DispatcherClient;
    let dtrs: DtrsClient;
    let epum: EpumClient;
    /** Every worker process seen: instance id -> pid. */
    const seen = new Map<string, number>();
    const instanceDir = (): string => join(cluster.dirs[0]!, 'instances', 'here');

    function scanWorkers(): void {
      if (!cluster.dirs[0] || !existsSync(instanceDir())) return;
      for (const name of readdirSync(instanceDir())) {
        try {
          const record = JSON.parse(readFileSync(join(instanceDir(), name, 'instance.json'), 'utf8')) as { pid?: number };
          if (typeof record.pid === 'number') seen.set(name, record.pid);
        } catch {
          // No record yet.
        }
      }
    }
    const alive = (): string[] => [...seen].filter(([id, pid]) => isInstanceProcess(pid, id)).map(([id]) => id);

    beforeAll(async () => {
      await cluster.startAll();
      dispatcher = new DispatcherClient(cluster.address(0));
      dtrs = new DtrsClient(cluster.address(0));
      epum = new EpumClient(cluster.address(0));
    }, 60_000);

    afterAll(async () => {
      dispatcher?.close();
      dtrs?.close();
      epum?.close();
      scanWorkers();
      for (const [id, pid] of seen) if (isInstanceProcess(pid, id)) signalInstance(pid, 'SIGKILL');
      await waitFor(() => alive().length === 0, { what: 'worker processes gone' });
      await cluster.destroy();
      await killMarked();
    });

    it('grows the domain for queued work and retires the idle workers', { timeout: 60_000 }, async () => {
      await dtrs.addSite('here', { type: 'local', description: 'this machine' });
      await dtrs.addDt('pd-worker', { sites: { here: { args: ['--slots', '2'] } } });
      await epum.add({ id: 'pd_default', config: { engine: 'npreserving', engine_conf: { preserve_n: 0, deployable_type: 'pd-worker', site: 'here' } } });
      await dispatcher.createDefinition(SLEEPER);

      const upids = ['e1', 'e2', 'e3'];
      for (const upid of upids) await dispatcher.schedule({ upid, definitionId: SLEEPER.id });
      const ps = await until('3 processes RUNNING on workers the domain launched', async () => {
        scanWorkers();
        const l = await dispatcher.list();
        return l.length === 3 && l.every((p) => p.state === 'RUNNING') ? l : undefined;
      }, 40_000);

      // Asked for 3 workers while no worker had said it has 2 slots; once one did, 2 are enough (3
      // processes, 2 slots each): the domain settles at 2 and the idle third is retired.
      const domain = await until('pd_default settled at 2 RUNNING workers', async () => {
        const d = await epum.describe('pd_default');
        const live = d.instances.filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED');
        return (d.config.engine_conf as { preserve_n: number }).preserve_n === 2 && live.length === 2 && live.every((i) => i.state === 'RUNNING') ? d : undefined;
      });
      const status = await dispatcher.status();
      const running = domain.instances.filter((i) => i.state === 'RUNNING');
      // The retired worker was an idle one: no process was moved (all still in their first round).
      expect(summary(await dispatcher.list())).toMatch(/^(e\d:RUNNING\/r0@\S+ ?){3}$/);
      if (process.env.CEI_TEST_VERBOSE) process.stderr.write(`pd_default: ${JSON.stringify(domain.instances.map((i) => [i.instance_id, i.state]))}\n`);
      // Each process runs on a worker the provisioner launched for the domain.
      for (const p of ps) {
        const agent = status.agents.find((a) => a.nodeId === p.assigned!.nodeId)!;
        expect(agent.slots).toBe(2);
        expect(running.map((i) => i.instance_id)).toContain(agent.properties.instance_id);
      }
      scanWorkers();
      await waitFor(() => alive().length === 2, { timeoutMs: DEADLINE_MS, what: 'the retired worker\'s process gone, 2 left' });

      for (const upid of upids) await dispatcher.terminate(upid);
      await waitFor(async () => (await dispatcher.list()).every((p) => p.state === 'TERMINATED'), { timeoutMs: DEADLINE_MS, what: 'processes TERMINATED' });
      // The need drops to the minimum (0): the domain terminates its workers and their processes end.
      await until('pd_default back to 0 with every instance TERMINATED', async () => {
        const d = await epum.describe('pd_default');
        return (d.config.engine_conf as { preserve_n: number }).preserve_n === 0 && d.instances.every((i) => i.state === 'TERMINATED');
      });
      scanWorkers();
      await waitFor(() => alive().length === 0, { timeoutMs: DEADLINE_MS, what: 'no worker process left' });
      await waitFor(async () => (await dispatcher.status()).agents.length === 0, { timeoutMs: DEADLINE_MS, what: 'the retired workers\' agents evacuated' });
      expect(marked().filter((pid) => runs(pid, 'sleep'))).toEqual([]);

      await epum.remove('pd_default');
      await waitFor(async () => (await epum.list()).length === 0, { timeoutMs: DEADLINE_MS, what: 'the domain removed' });
    });
  });
});
