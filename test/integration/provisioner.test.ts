/**
 * The provisioner with real processes: a bootstrap node hosts the registry and the provisioner; a
 * local site launches real `cei node --role=worker` processes into the node's data directory
 * (`<data>/instances/<site>`), which join the cluster and announce their instance ids. Provision two,
 * see them RUNNING, terminate them, and check that no worker process is left.
 *
 * Every worker process recorded under the instance directory is SIGKILLed in afterAll, whatever
 * happened, and the bootstrap with them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CeiClient, unary } from '../../src/client.js';
import { DtrsClient } from '../../src/client-dtrs.js';
import { ProvisionerClient } from '../../src/client-provisioner.js';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import type { InstanceView } from '../../src/actors/provisioner-protocol.js';
import { CLI, removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const DEADLINE_MS = 30_000;

describe('the provisioner with a local site and real workers', () => {
  let dir: string;
  let bootstrap: NodeProcess | undefined;
  let cluster: CeiClient;
  let dtrs: DtrsClient;
  let provisioner: ProvisionerClient;
  /** Worker processes seen, besides those recorded on disk. */
  const seen: Array<{ pid: number; id: string }> = [];

  const instanceDir = (): string => join(dir, 'instances', 'here');

  /** Every worker process recorded under the site's instance directory or seen by the test. */
  function workerProcesses(): Array<{ pid: number; id: string }> {
    const out = [...seen];
    if (dir && existsSync(instanceDir())) {
      for (const name of readdirSync(instanceDir())) {
        try {
          const record = JSON.parse(readFileSync(join(instanceDir(), name, 'instance.json'), 'utf8')) as { pid?: number };
          if (typeof record.pid === 'number') out.push({ pid: record.pid, id: name });
        } catch {
          // No record: no process was started for it.
        }
      }
    }
    return out;
  }

  beforeAll(async () => {
    expect(existsSync(CLI), 'run npm run build first').toBe(true);
    dir = tempDir('cei-prov-');
    bootstrap = await startNode({ dataDir: dir, role: 'bootstrap', readyTimeoutMs: DEADLINE_MS });
    cluster = new CeiClient(bootstrap.address);
    dtrs = new DtrsClient(bootstrap.address);
    provisioner = new ProvisionerClient(bootstrap.address);
  });

  afterAll(async () => {
    cluster?.close();
    dtrs?.close();
    provisioner?.close();
    for (const { pid, id } of workerProcesses()) if (isInstanceProcess(pid, id)) signalInstance(pid, 'SIGKILL');
    await waitFor(() => workerProcesses().every(({ pid, id }) => !isInstanceProcess(pid, id)), { what: 'worker processes gone' });
    if (bootstrap) {
      bootstrap.kill('SIGKILL');
      await bootstrap.exited;
    }
    if (dir) removeDir(dir);
  });

  async function describeAll(ids: string[]): Promise<InstanceView[]> {
    return (await provisioner.describe(ids, 5_000)).instances;
  }

  it('provisions two real workers to RUNNING, terminates them, and leaves no process behind', async () => {
    await dtrs.addSite('here', { type: 'local', description: 'this machine' });
    await dtrs.addDt('worker', { sites: { here: {} } });

    const reply = await provisioner.provision({ launchId: 'it1', deployableType: 'worker', site: 'here', count: 2 });
    expect(reply.created).toBe(true);
    const ids = reply.instances.map((i) => i.instance_id);
    expect(ids).toEqual(['it1-0', 'it1-1']);
    expect(reply.instances.map((i) => i.state)).toEqual(['REQUESTED', 'REQUESTED']);

    let instances: InstanceView[] = [];
    await waitFor(
      async () => {
        instances = await describeAll(ids);
        for (const i of instances) if (i.state === 'FAILED' || i.state === 'TERMINATED') throw new Error(`${i.instance_id} ${i.state}: ${i.state_detail}`);
        return instances.every((i) => i.state === 'RUNNING');
      },
      { timeoutMs: DEADLINE_MS, what: 'both instances RUNNING' },
    );
    for (const { pid, id } of workerProcesses()) seen.push({ pid, id });
    expect(seen.map((s) => s.id).sort()).toEqual(ids);
    // RUNNING means joined and announced: each instance names a worker node that is up in the cluster.
    const { members } = await cluster.members(5_000);
    for (const i of instances) {
      expect(i.node_id).toMatch(/\S/);
      expect(members.find((m) => m.id === i.node_id)).toMatchObject({ role: 'worker', status: 'up', address: i.address });
    }

    // The CLI shows the same.
    const cli = await runCli(['provisioner', '--node', bootstrap!.address, 'describe', '--json', ...ids]);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as { instances: InstanceView[] }).instances.map((i) => i.state)).toEqual(['RUNNING', 'RUNNING']);

    // Idempotent: provisioning the same launch again starts no process.
    expect((await provisioner.provision({ launchId: 'it1', deployableType: 'worker', site: 'here', count: 2 })).created).toBe(false);
    expect(new Set(workerProcesses().map((w) => w.pid)).size).toBe(2);

    const terminated = await provisioner.terminate(ids);
    expect(terminated.instances.map((i) => i.state)).toEqual(['TERMINATING', 'TERMINATING']);
    await waitFor(async () => (await describeAll(ids)).every((i) => i.state === 'TERMINATED'), { timeoutMs: DEADLINE_MS, what: 'both TERMINATED' });
    expect((await describeAll(ids)).map((i) => i.state_desc)).toEqual(['TERMINATE_REQUESTED', 'TERMINATE_REQUESTED']);
    for (const { pid, id } of seen) expect(isInstanceProcess(pid, id), `worker ${id} (pid ${pid}) still runs`).toBe(false);
    expect(readdirSync(instanceDir())).toEqual([]);
    await waitFor(
      async () => {
        const view = await cluster.members(5_000);
        return instances.every((i) => view.members.every((m) => m.id !== i.node_id || m.status === 'left' || m.status === 'down'));
      },
      { timeoutMs: DEADLINE_MS, what: 'the workers left the cluster' },
    );
  });

  it('answers bad requests with INVALID_ARGUMENT and an unknown site with FAILED/DTRS_LOOKUP_FAILED', async () => {
    await expect(provisioner.provision({ launchId: 'bad id', deployableType: 'worker', site: 'here' })).rejects.toMatchObject({
      details: expect.stringMatching(/^launch_id: must be 1-100 letters/),
    });
    const r = await provisioner.provision({ launchId: 'nosite', deployableType: 'worker', site: 'elsewhere' });
    expect(r.instances).toMatchObject([{ instance_id: 'nosite-0', state: 'FAILED', state_desc: 'DTRS_LOOKUP_FAILED' }]);
  });

  it('serves health for cei.v1.Provisioner', async () => {
    const healthDef = protoLoader.loadSync(resolve(import.meta.dirname, '../../node_modules/grpc-health-check/proto/health/v1/health.proto'), { enums: String });
    const Health = (grpc.loadPackageDefinition(healthDef) as any).grpc.health.v1.Health;
    const health = new Health(bootstrap!.address, grpc.credentials.createInsecure());
    try {
      expect((await unary<{ status: string }>((o, cb) => health.Check({ service: 'cei.v1.Provisioner' }, o, cb))).status).toBe('SERVING');
    } finally {
      health.close();
    }
  });
});
