/**
 * The HA service policy on real nodes: an npreserving service keeps 2 copies of an exec definition
 * running on a real worker through the dispatcher, goes STEADY, shrinks to 1 when reconfigured, and
 * leaves no process behind when removed (checked by pid on the worker). The CLI drives it, as an
 * operator would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaClient } from '../../src/client-ha.js';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { unwrapReply } from '../../src/actors/role-reply.js';
import type { DescribeReply } from '../../src/actors/ee-agent/protocol.js';
import { TestCluster } from '../support/cluster.js';
import { runCli } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

/** Whether a process with this pid is alive. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('an HA service on a real cluster', () => {
  const cluster = new TestCluster([{ role: 'bootstrap' }, { role: 'worker', args: ['--slots', '4'] }]);
  let ha: HaClient;
  let dispatcher: DispatcherClient;
  const pids = new Set<number>();

  beforeAll(async () => {
    await cluster.startAll();
    ha = new HaClient(cluster.address(0));
    dispatcher = new DispatcherClient(cluster.address(0));
    await waitFor(async () => (await dispatcher.status()).agents.length === 1, { timeoutMs: 20_000, what: 'the worker heartbeating' });
  }, 60_000);

  afterAll(async () => {
    ha?.close();
    dispatcher?.close();
    await cluster.destroy();
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });

  /** The pids of the RUNNING processes on the worker, from its agent. */
  /** The pids of the RUNNING processes on the worker, as its agent reports them. */
  async function workerPids(): Promise<Map<string, number>> {
    const agent = { type: 'ee-agent', id: cluster.ids[1]! };
    const reply = unwrapReply<DescribeReply>(await cluster.client(0).ask(agent, { describe: true }), 'ee-agent');
    const out = new Map<string, number>();
    for (const p of reply.processes) if (p.state === 'RUNNING' && p.pid !== undefined) out.set(p.upid, p.pid);
    for (const pid of out.values()) pids.add(pid);
    return out;
  }

  it('keeps 2 copies STEADY, shrinks to 1 on reconfigure, and leaves no process after remove', { timeout: 90_000 }, async () => {
    const at = ['--node', cluster.address(0)];
    await dispatcher.createDefinition({ id: 'sleeper', type: 'exec', executable: { argv: ['sleep', '600'], protocol: 'none' } });
    const created = await runCli(['ha', ...at, 'create', 'sleepers', '--set', 'definition_id=sleeper', '--set', 'policy=npreserving', '--set', 'policy_parameters.preserve_n=2']);
    expect(created.code, created.stderr).toBe(0);

    const steady = await waitFor(
      async () => {
        const d = await ha.describe('sleepers');
        return d.state === 'STEADY' ? d : undefined;
      },
      { timeoutMs: 30_000, what: 'sleepers STEADY' },
    );
    expect(steady!.processes.filter((p) => p.state === 'RUNNING')).toHaveLength(2);
    const running = await workerPids();
    expect(running.size).toBe(2);
    for (const pid of running.values()) expect(alive(pid)).toBe(true);

    const reconfigured = await runCli(['ha', ...at, 'reconfigure', 'sleepers', '--set', 'policy_parameters.preserve_n=1']);
    expect(reconfigured.code, reconfigured.stderr).toBe(0);
    await waitFor(
      async () => {
        const d = await ha.describe('sleepers');
        return d.state === 'STEADY' && d.processes.filter((p) => p.state === 'RUNNING').length === 1;
      },
      { timeoutMs: 30_000, what: 'sleepers STEADY with one process' },
    );
    await waitFor(async () => [...running.values()].filter(alive).length === 1, { timeoutMs: 20_000, what: 'one sleep process ended' });

    const listed = await runCli(['ha', ...at, 'list', '--json']);
    expect((JSON.parse(listed.stdout) as { services: Array<{ name: string }> }).services.map((s) => s.name)).toEqual(['sleepers']);

    const removed = await runCli(['ha', ...at, 'remove', 'sleepers']);
    expect(removed.code, removed.stderr).toBe(0);
    await waitFor(async () => (await ha.list()).length === 0, { timeoutMs: 30_000, what: 'the service gone' });
    await waitFor(async () => [...pids].filter(alive).length === 0, { timeoutMs: 20_000, what: 'no sleep process left' });
  });
});
