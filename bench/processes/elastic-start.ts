/**
 * Time from a queued process to RUNNING when a new worker must be started: a fresh bootstrap node
 * with no worker, a `local` site whose `data_dir` is in the run's temp dirs, a deployable type of it,
 * and the dispatcher's domain `pd_default` (npreserving, preserve_n 0). One `exec` process is
 * scheduled; the clock runs from the schedule call until the dispatcher describes it RUNNING (every
 * `pollMs`), through the dispatcher's need, the domain's reconfigure and tick, the provisioner's
 * launch of a real `cei node --role=worker` process, its join, its agent's first heartbeat and the
 * launch of the process on it. The domain is removed afterwards (its worker terminated).
 */
import { performance } from 'node:perf_hooks';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { sleep, type EpuNode } from '../epu/epu-node.js';
import { workerProcesses } from '../epu/workers.js';

export const ELASTIC_DOMAIN = 'pd_default';
const DEFINITION = { id: 'sleeper', type: 'exec', executable: { argv: ['sleep', '3600'], protocol: 'none' } };

export interface ElasticRound {
  /** Schedule call to RUNNING. */
  ms: number;
  /** Schedule call to the first worker process seen alive under the site's directory. */
  workerSpawnedMs: number;
}

export async function queuedToRunning(node: EpuNode, siteDir: string, o: { pollMs: number; timeoutMs: number }): Promise<ElasticRound> {
  await node.dtrs.addSite('here', { type: 'local', description: 'this machine', settings: { data_dir: siteDir } });
  await node.dtrs.addDt('worker', { sites: { here: {} } });
  await node.epum.add({ id: ELASTIC_DOMAIN, config: { engine: 'npreserving', engine_conf: { preserve_n: 0, deployable_type: 'worker', site: 'here' } } });
  const dispatcher = new DispatcherClient(node.node.address);
  try {
    await dispatcher.createDefinition(DEFINITION);
    const t0 = performance.now();
    await dispatcher.schedule({ upid: 'elastic-1', definitionId: DEFINITION.id });
    let workerSpawnedMs = Number.NaN;
    for (;;) {
      if (Number.isNaN(workerSpawnedMs) && workerProcesses(siteDir).length > 0) workerSpawnedMs = performance.now() - t0;
      const p = await dispatcher.describe('elastic-1', 2_000).catch(() => undefined);
      if (p?.state === 'RUNNING') return { ms: performance.now() - t0, workerSpawnedMs };
      if (p && ['FAILED', 'REJECTED', 'TERMINATED', 'EXITED'].includes(p.state)) throw new Error(`elastic-1 ${p.state}: ${p.lastError ?? ''}`);
      if (performance.now() - t0 > o.timeoutMs) throw new Error(`elastic-1 not RUNNING within ${o.timeoutMs} ms (last ${p?.state ?? 'unknown'})`);
      await sleep(o.pollMs);
    }
  } finally {
    await dispatcher.terminate('elastic-1', 5_000).catch(() => undefined);
    dispatcher.close();
  }
}
