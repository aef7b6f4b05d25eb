/**
 * `cei status`: every recorded service of a run with its readiness checked now, plus the EPU
 * domains with their instances and the processes, read through the first node that answers.
 */
import type { LaunchOptions } from './launch-options.js';
import type { RunRecord, RunStore, ServiceRecord } from './run-store.js';
import { checkRecord, healthCheck } from './readiness.js';
import { describeSystem, SystemClients, type SystemView } from './system.js';

export interface ServiceStatus {
  name: string;
  level: string;
  kind: ServiceRecord['kind'];
  state: ServiceRecord['state'];
  pid?: number;
  address?: string;
  data_dir?: string;
  /** The readiness check made now. */
  ready: boolean;
  reason?: string;
}

export interface RunStatus {
  run: RunRecord;
  services: ServiceStatus[];
  /** The node the system was read through, if any answered. */
  via?: string;
  system?: SystemView;
}

/** The first recorded node or address service that passes its health check now. */
export async function reachableNode(services: ServiceRecord[], o: LaunchOptions): Promise<string | undefined> {
  for (const s of services) {
    if ((s.kind === 'node' || s.kind === 'remote') && s.address && (await healthCheck(s.address, o.checkDeadlineMs)).ok) return s.address;
  }
  return undefined;
}

export async function runStatus(store: RunStore, name: string, o: LaunchOptions): Promise<RunStatus> {
  const run = await store.requireRun(name);
  const records = await store.services(name);
  const services = await Promise.all(
    records.map(async (s): Promise<ServiceStatus> => {
      const check = s.state === 'stopped' ? { ok: false as const, reason: 'stopped' } : await checkRecord(s, o);
      return {
        name: s.name,
        level: s.level,
        kind: s.kind,
        state: s.state,
        pid: s.pid,
        address: s.address,
        data_dir: s.data_dir,
        ready: check.ok,
        reason: check.ok ? undefined : check.reason,
      };
    }),
  );
  const status: RunStatus = { run, services };
  const via = run.state === 'torn-down' ? undefined : await reachableNode(records, o);
  if (via) {
    const clients = new SystemClients(via);
    try {
      status.via = via;
      status.system = await describeSystem(clients, 5_000);
    } finally {
      clients.close();
    }
  }
  return status;
}
