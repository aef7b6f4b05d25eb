/**
 * A plan's system objects in the running cluster, through the public API clients only: applying
 * them idempotently after boot (add; on ALREADY_EXISTS update, or carry on), reading them back for
 * status, and removing what teardown must (processes terminated, EPU domains removed and waited
 * for until their instances are gone).
 */
import * as grpc from '@grpc/grpc-js';
import { DtrsClient } from '../client-dtrs.js';
import { EpumClient } from '../client-epum.js';
import { DispatcherClient } from '../client-dispatcher.js';
import { StreamsClient } from '../client-streams.js';
import { errorMessage } from '../errors.js';
import type { PlanSystem } from '../plans/plan.js';
import type { DomainDescription } from '../actors/epum/protocol.js';
import type { ProcessRecord } from '../actors/dispatcher/core.js';

const isGrpc = (err: unknown, code: grpc.status): boolean => (err as grpc.ServiceError)?.code === code;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The four public API clients on one node, closed together. */
export class SystemClients {
  readonly dtrs: DtrsClient;
  readonly epum: EpumClient;
  readonly dispatcher: DispatcherClient;
  readonly streams: StreamsClient;
  constructor(readonly address: string) {
    this.dtrs = new DtrsClient(address);
    this.epum = new EpumClient(address);
    this.dispatcher = new DispatcherClient(address);
    this.streams = new StreamsClient(address);
  }
  close(): void {
    this.dtrs.close();
    this.epum.close();
    this.dispatcher.close();
    this.streams.close();
  }
}

/** Add; an add that finds the same record says `created: false`; ALREADY_EXISTS (a different one) updates it. */
async function ensure(add: () => Promise<unknown>, update: () => Promise<unknown>): Promise<'created' | 'exists' | 'updated'> {
  try {
    const r = await add();
    return (r as { created?: unknown } | undefined)?.created === false ? 'exists' : 'created';
  } catch (err) {
    if (!isGrpc(err, grpc.status.ALREADY_EXISTS)) throw err;
    await update();
    return 'updated';
  }
}

/**
 * Applies every object of `system` in the order sites, deployable types, domains, process
 * definitions, streams, processes (a process needs its definition and streams), each idempotently.
 * Calls `say` with one line per object. Throws the first error, naming the object.
 */
export async function applySystem(c: SystemClients, system: PlanSystem, o: { applyTimeoutMs: number; pollMs: number; deadlineMs: number }, say: (line: string) => void): Promise<void> {
  const step = async (what: string, fn: () => Promise<string>): Promise<void> => {
    try {
      say(`${what}: ${await fn()}`);
    } catch (err) {
      throw new Error(`applying ${what}: ${errorMessage(err)}`, { cause: err });
    }
  };
  const d = o.deadlineMs;
  for (const [name, def] of Object.entries(system.sites)) {
    await step(`site ${name}`, () => ensure(() => c.dtrs.addSite(name, def, d), () => c.dtrs.updateSite(name, def, d)));
  }
  for (const [name, def] of Object.entries(system.deployable_types)) {
    await step(`deployable type ${name}`, () => ensure(() => c.dtrs.addDt(name, def, d), () => c.dtrs.updateDt(name, def, d)));
  }
  for (const [id, body] of Object.entries(system.domains)) {
    await step(`domain ${id}`, async () => {
      const deadline = Date.now() + o.applyTimeoutMs;
      for (;;) {
        try {
          const r = await c.epum.add({ id, definition: body.definition, config: body.config }, d);
          return r.created ? 'created' : 'exists';
        } catch (err) {
          if (!isGrpc(err, grpc.status.ALREADY_EXISTS) || Date.now() > deadline) throw err;
          // Made with another config: bring it to the plan's; else still being removed: wait.
          if (/different config/.test((err as grpc.ServiceError).details) && body.config?.engine_conf !== undefined) {
            await c.epum.reconfigure(id, { engine_conf: body.config.engine_conf }, d);
            return 'reconfigured';
          }
          await pause(o.pollMs);
        }
      }
    });
  }
  for (const [id, body] of Object.entries(system.process_definitions)) {
    const def = { ...body, id } as Parameters<DispatcherClient['createDefinition']>[0];
    await step(`process definition ${id}`, () => ensure(() => c.dispatcher.createDefinition(def, d), () => c.dispatcher.updateDefinition(def, d)));
  }
  for (const [name, body] of Object.entries(system.streams)) {
    await step(`stream ${name}`, async () => {
      await c.streams.configure(name, body.retention ?? {}, d);
      return 'configured';
    });
  }
  for (const [upid, body] of Object.entries(system.processes)) {
    await step(`process ${upid}`, async () => {
      try {
        await c.dispatcher.describe(upid, d);
        return 'exists';
      } catch (err) {
        if (!isGrpc(err, grpc.status.NOT_FOUND)) throw err;
      }
      try {
        await c.dispatcher.schedule({ ...body, upid } as Parameters<DispatcherClient['schedule']>[0], d);
        return 'scheduled';
      } catch (err) {
        if (isGrpc(err, grpc.status.ALREADY_EXISTS)) return 'exists';
        throw err;
      }
    });
  }
}

/**
 * Starts (`booting`, recovering every live process from before the restart) or ends the
 * dispatcher's system boot, asked again until `o.timeoutMs` while the restarted cluster settles
 * (its owner may still be coming up). Throws the last error after that.
 */
export async function setSystemBoot(c: SystemClients, booting: boolean, o: { timeoutMs: number; pollMs: number; deadlineMs: number }, say: (line: string) => void): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    try {
      const r = await c.dispatcher.setSystemBoot(booting, booting, o.deadlineMs);
      if (!booting) say('system boot ended: held processes are placed');
      else say(`system boot started: ${r.recovered.length === 0 ? 'no process' : `${r.recovered.length} process(es)`} from before the restart held until the boot ends${r.recovered.length > 0 ? ` (${r.recovered.join(', ')})` : ''}`);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`cannot ${booting ? 'start' : 'end'} the dispatcher's system boot through ${c.address}: ${errorMessage(err)}`, { cause: err });
      await pause(o.pollMs);
    }
  }
}

export interface SystemView {
  domains: DomainDescription[];
  processes: ProcessRecord[];
  /** Why a part could not be read, if it could not. */
  errors: string[];
}

/** Every EPU domain with its instances, and every process, as the cluster reports them now. */
export async function describeSystem(c: SystemClients, deadlineMs: number): Promise<SystemView> {
  const view: SystemView = { domains: [], processes: [], errors: [] };
  try {
    for (const summary of await c.epum.list(deadlineMs)) {
      try {
        view.domains.push(await c.epum.describe(summary.id, deadlineMs));
      } catch (err) {
        if (!isGrpc(err, grpc.status.NOT_FOUND)) view.errors.push(`domain ${summary.id}: ${errorMessage(err)}`);
      }
    }
  } catch (err) {
    view.errors.push(`domains: ${errorMessage(err)}`);
  }
  try {
    view.processes = await c.dispatcher.list([], deadlineMs);
  } catch (err) {
    view.errors.push(`processes: ${errorMessage(err)}`);
  }
  return view;
}

/**
 * Terminates the plan's processes, then removes its EPU domains (their instances are terminated
 * by the provisioner) and waits until none of them is listed any more. Returns what could not be
 * done; never throws.
 */
export async function removeSystem(c: SystemClients, system: Pick<PlanSystem, 'domains' | 'processes'>, o: { drainTimeoutMs: number; pollMs: number; deadlineMs: number }, say: (line: string) => void): Promise<string[]> {
  const problems: string[] = [];
  for (const upid of Object.keys(system.processes)) {
    try {
      await c.dispatcher.terminate(upid, o.deadlineMs);
      say(`process ${upid}: terminating`);
    } catch (err) {
      if (!isGrpc(err, grpc.status.NOT_FOUND)) problems.push(`process ${upid}: ${errorMessage(err)}`);
    }
  }
  const ids = Object.keys(system.domains);
  for (const id of ids) {
    try {
      const r = await c.epum.remove(id, o.deadlineMs);
      say(`domain ${id}: removing (${r.terminating} instance(s) terminating)`);
    } catch (err) {
      if (!isGrpc(err, grpc.status.NOT_FOUND)) problems.push(`domain ${id}: ${errorMessage(err)}`);
    }
  }
  const deadline = Date.now() + o.drainTimeoutMs;
  let left = ids;
  while (left.length > 0) {
    try {
      const listed = new Set((await c.epum.list(o.deadlineMs)).map((d) => d.id));
      left = ids.filter((id) => listed.has(id));
    } catch (err) {
      problems.push(`waiting for the domains to go: ${errorMessage(err)}`);
      return problems;
    }
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      problems.push(`domain(s) ${left.join(', ')} still being removed after ${o.drainTimeoutMs} ms`);
      break;
    }
    await pause(o.pollMs);
  }
  if (ids.length > 0 && left.length === 0) say(`domains removed: ${ids.join(', ')}`);
  return problems;
}
