/**
 * The embedded default's demo, the seed's classic example "Sleeper Must Awaken": on the node at
 * `address` (one process holding the bootstrap and control roles), it registers a local site and a
 * `sleeper` deployable type, adds a `sleeper` domain that keeps two real local worker processes
 * (npreserving preserve_n=2), prints each instance's state and health as they change, and once both
 * are RUNNING kills one with SIGKILL and shows the replacement coming up and the time to repair.
 * Then the transform demo (demo-transform.ts) runs a window-average process on those workers and
 * kills the one hosting it mid-stream. It keeps printing changes while the node serves; `shutdown` (on Ctrl-C) removes the domain, which
 * terminates its workers, before the node stops: workers are detached processes that would outlive
 * it otherwise.
 *
 * It talks to the node through the public API only, as any client would. The one thing it reads
 * besides is a worker's pid, from the instance record the local driver writes under the site's
 * `data_dir` (src/iaas/driver-local.ts), to kill it the way a crash would.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DtrsClient } from './client-dtrs.js';
import { EpumClient } from './client-epum.js';
import { isInstanceProcess, signalInstance } from './iaas/local-process.js';
import { errorMessage } from './errors.js';
import { TransformDemo } from './demo-transform.js';
import type { DomainDescription, DomainInstanceView } from './actors/epum/protocol.js';

export const DEMO_DOMAIN = 'sleeper';
const SITE = 'local';
const DT = 'sleeper';
const SIZE = 2;
const POLL_MS = 100;
/** How long each phase may take before the demo says it is stuck (a real worker starts in about 0.3 s). */
const PHASE_TIMEOUT_MS = 60_000;
/** How long shutdown waits for the workers to be terminated before it kills what is left. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

export interface DemoOptions {
  /** The node's public API. */
  address: string;
  /** The node's data directory; the sleepers' directories go under it. */
  dataDir: string;
  print(line: string): void;
}

const isGrpc = (err: unknown, code: grpc.status): boolean => (err as grpc.ServiceError)?.code === code;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SleeperDemo {
  private readonly dtrs: DtrsClient;
  private readonly epum: EpumClient;
  private readonly sleepersDir: string;
  /** Last state/health printed per instance. */
  private readonly shown = new Map<string, string>();
  /** Every worker process seen: instance id -> pid. */
  private readonly pids = new Map<string, number>();
  private readonly started = Date.now();
  private stopping = false;
  private watching: Promise<void> | undefined;
  private closed: Promise<void> | undefined;
  private transform: TransformDemo | undefined;
  /** The domain as last described, to find which sleeper is which cluster node. */
  private lastSeen: DomainDescription | undefined;

  constructor(private readonly o: DemoOptions) {
    this.dtrs = new DtrsClient(o.address);
    this.epum = new EpumClient(o.address);
    this.sleepersDir = resolve(o.dataDir, 'sleepers');
  }

  private say(line: string): void {
    this.o.print(`demo: ${line}`);
  }

  private stamp(): string {
    return `+${((Date.now() - this.started) / 1000).toFixed(2)}s`;
  }

  /** Sets everything up, waits for both sleepers, kills one and waits for its replacement. Resolves early on shutdown. */
  async run(): Promise<void> {
    this.say(`Sleeper Must Awaken: a "${DEMO_DOMAIN}" domain keeps ${SIZE} real worker processes (npreserving preserve_n=${SIZE}) on this machine`);
    await this.ensure(
      () => this.dtrs.addSite(SITE, { type: 'local', description: 'worker processes on this machine', settings: { data_dir: this.sleepersDir } }),
      () => this.dtrs.updateSite(SITE, { type: 'local', description: 'worker processes on this machine', settings: { data_dir: this.sleepersDir } }),
    );
    await this.ensure(
      () => this.dtrs.addDt(DT, { description: 'a worker that sleeps until there is work', sites: { [SITE]: {} } }),
      () => this.dtrs.updateDt(DT, { description: 'a worker that sleeps until there is work', sites: { [SITE]: {} } }),
    );
    await this.addDomain();
    this.watching = this.watch();

    const all = await this.until(`${SIZE} sleepers RUNNING`, (d) => running(d).length === SIZE);
    if (!all) return;
    this.say(`all ${SIZE} sleepers RUNNING ${this.stamp()} after the start`);
    const victim = running(all)[0]!;
    this.scanPids();
    const pid = this.pids.get(victim.instance_id);
    if (pid === undefined || !isInstanceProcess(pid, victim.instance_id)) {
      this.say(`cannot find the process of ${victim.instance_id}; skipping the kill`);
      return;
    }
    this.say(`killing ${victim.instance_id} (pid ${pid}, node ${victim.node_id}) with SIGKILL, as a crash would`);
    const killedAt = Date.now();
    signalInstance(pid, 'SIGKILL');
    const repaired = await this.until('the replacement RUNNING', (d) => running(d).length === SIZE && !running(d).some((i) => i.instance_id === victim.instance_id));
    if (!repaired) return;
    const replacement = running(repaired).find((i) => i.launch_time >= killedAt);
    this.say(`repaired: ${SIZE} sleepers RUNNING again${replacement ? ` (${replacement.instance_id} replaced ${victim.instance_id})` : ''}; time to repair ${Date.now() - killedAt} ms`);
    this.say(`see it from another terminal: node dist/cli.js domain describe ${DEMO_DOMAIN} --node ${this.o.address}`);
    if (this.stopping) return;
    this.transform = new TransformDemo({
      address: this.o.address,
      print: this.o.print,
      killNode: (nodeId) => this.killNode(nodeId),
      stopping: () => this.stopping,
    });
    await this.transform.runDemo();
  }

  /** SIGKILLs the sleeper that is cluster node `nodeId`; false when it is not one we can find. */
  private killNode(nodeId: string): boolean {
    this.scanPids();
    const instance = this.lastSeen?.instances.find((i) => i.node_id === nodeId && i.state === 'RUNNING');
    const pid = instance && this.pids.get(instance.instance_id);
    if (!instance || pid === undefined || !isInstanceProcess(pid, instance.instance_id)) return false;
    signalInstance(pid, 'SIGKILL');
    return true;
  }

  /** Add, or on ALREADY_EXISTS bring the existing record to what the demo needs. */
  private async ensure(add: () => Promise<unknown>, update: () => Promise<unknown>): Promise<void> {
    try {
      await add();
    } catch (err) {
      if (!isGrpc(err, grpc.status.ALREADY_EXISTS)) throw err;
      await update();
    }
  }

  private async addDomain(): Promise<void> {
    const config = { engine: 'npreserving', engine_conf: { preserve_n: SIZE, deployable_type: DT, site: SITE } };
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      try {
        const r = await this.epum.add({ id: DEMO_DOMAIN, config });
        this.say(r.created ? `domain ${DEMO_DOMAIN} added; its engine asked for ${SIZE} instances` : `domain ${DEMO_DOMAIN} exists from an earlier run; carrying on with it`);
        return;
      } catch (err) {
        // Still being removed by an earlier run, or made with another config: wait, or say so.
        if (!isGrpc(err, grpc.status.ALREADY_EXISTS) || this.stopping || Date.now() > deadline) throw err;
        if (/different config/.test((err as grpc.ServiceError).details)) {
          await this.epum.reconfigure(DEMO_DOMAIN, { engine_conf: config.engine_conf });
          this.say(`domain ${DEMO_DOMAIN} exists from an earlier run; reconfigured to ${SIZE} sleepers`);
          return;
        }
        await sleep(POLL_MS * 2);
      }
    }
  }

  /** Prints every change of an instance's state or health until shutdown. */
  private async watch(): Promise<void> {
    while (!this.stopping) {
      try {
        this.show(await this.epum.describe(DEMO_DOMAIN, 5_000));
      } catch (err) {
        if (this.stopping) return;
        if (!isGrpc(err, grpc.status.NOT_FOUND)) this.say(`describe failed: ${errorMessage(err)}`);
      }
      await sleep(POLL_MS);
    }
  }

  private show(d: DomainDescription): void {
    this.lastSeen = d;
    for (const i of d.instances) {
      const now = i.state + (i.state_desc ? `/${i.state_desc}` : '') + (i.health === 'OK' ? '' : ` health ${i.health}`);
      if (this.shown.get(i.instance_id) === now) continue;
      this.shown.set(i.instance_id, now);
      const where = i.state === 'RUNNING' && i.node_id ? ` (node ${i.node_id} at ${i.address})` : '';
      const why = i.health !== 'OK' && i.health_reason ? `: ${i.health_reason}` : '';
      this.say(`${this.stamp()} ${i.instance_id} ${now}${where}${why}`);
    }
  }

  /** Polls the domain until `check` holds; undefined on shutdown. Throws after PHASE_TIMEOUT_MS. */
  private async until(what: string, check: (d: DomainDescription) => boolean): Promise<DomainDescription | undefined> {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while (!this.stopping) {
      const d = await this.epum.describe(DEMO_DOMAIN, 5_000);
      this.show(d);
      this.scanPids();
      if (check(d)) return d;
      const failed = d.instances.find((i) => i.state === 'FAILED');
      if (failed) this.say(`${failed.instance_id} FAILED: ${failed.state_desc} ${failed.state_detail ?? ''}`);
      if (Date.now() > deadline) throw new Error(`demo: no ${what} within ${PHASE_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_MS);
    }
    return undefined;
  }

  /** Records the pid of every sleeper that has an instance record now. */
  private scanPids(): void {
    if (!existsSync(this.sleepersDir)) return;
    for (const id of readdirSync(this.sleepersDir)) {
      try {
        const record = JSON.parse(readFileSync(join(this.sleepersDir, id, 'instance.json'), 'utf8')) as { pid?: unknown };
        if (typeof record.pid === 'number') this.pids.set(id, record.pid);
      } catch {
        // Not started yet.
      }
    }
  }

  /**
   * Stops watching, removes the domain (its workers are terminated) and waits for it to be gone,
   * then kills any worker still running. Idempotent; never throws.
   */
  shutdown(): Promise<void> {
    this.closed ??= (async () => {
      this.stopping = true;
      await this.watching?.catch(() => {});
      await this.transform?.shutdown();
      try {
        this.say(`removing domain ${DEMO_DOMAIN}: terminating its sleepers`);
        await this.epum.remove(DEMO_DOMAIN, 5_000);
        const deadline = Date.now() + SHUTDOWN_TIMEOUT_MS;
        while (Date.now() < deadline && (await this.epum.list(5_000)).some((d) => d.id === DEMO_DOMAIN)) {
          this.scanPids();
          await sleep(POLL_MS);
        }
      } catch (err) {
        if (!isGrpc(err, grpc.status.NOT_FOUND)) this.say(`removing the domain failed: ${errorMessage(err)}`);
      }
      this.scanPids();
      const left = [...this.pids].filter(([id, pid]) => isInstanceProcess(pid, id));
      for (const [, pid] of left) signalInstance(pid, 'SIGKILL');
      this.say(left.length === 0 ? 'sleepers terminated' : `killed ${left.length} sleeper(s) still running`);
      this.epum.close();
      this.dtrs.close();
    })();
    return this.closed;
  }
}

function running(d: DomainDescription): DomainInstanceView[] {
  return d.instances.filter((i) => i.state === 'RUNNING' && i.health === 'OK');
}
