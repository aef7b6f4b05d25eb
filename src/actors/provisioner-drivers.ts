/**
 * The provisioner's IaaS drivers, one per site, in memory only. A driver holds live resources
 * (timers, a simulated cloud, knowledge of processes), so it is never part of the actor's state: the
 * state keeps each site's driver config and each instance's handle, and a provisioner that was
 * loaded on another node (a fail-over, a hand-off) makes its drivers again and `adopt`s the
 * instances from their handles.
 *
 * Drivers report changes through `watch`; those reports are coalesced per site for
 * `observeCoalesceMs` and handed to `onObserved` in one batch, which the provisioner sends to
 * itself as one message (so a thousand simulated instances booting at once cost one turn).
 */
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { createDriver, type DriverContext, type DriverFactory } from '../iaas/driver-factory.js';
import type { DriverInstance, IaasDriver, InstanceHandle } from '../iaas/driver.js';
import type { Clock, TimerHandle } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { ProvisionerOptions } from './provisioner-options.js';
import type { SiteConfig } from './provisioner-records.js';

export interface SiteDriversDeps {
  factory?: DriverFactory;
  clock: Clock;
  log: Logger;
  /** The node's data directory: local sites without a data_dir keep instances in `<dataDir>/instances/<site>`. */
  dataDir: string;
  options: Pick<ProvisionerOptions, 'local' | 'sim' | 'observeCoalesceMs'>;
  /** Called with a batch of one site's driver reports (never inside a driver call). */
  onObserved(site: string, instances: DriverInstance[]): void;
}

interface Entry {
  driver: IaasDriver;
  /** The config the driver was made from, as canonical JSON. */
  key: string;
  unwatch: () => void;
}

export class SiteDrivers {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Map<string, DriverInstance>>();
  private flushTimer: TimerHandle | undefined;

  constructor(private readonly deps: SiteDriversDeps) {}

  get(site: string): IaasDriver | undefined {
    return this.entries.get(site)?.driver;
  }

  sites(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * The driver for `site` made from `config`. A new one is made when there is none or the config
   * changed (the old one is closed; its instances stay with the IaaS), and then adopts `handles`
   * (resolving with what it reports of them). Throws InvalidArgumentError for settings the driver
   * refuses.
   */
  async ensure(site: string, config: SiteConfig, handles: () => InstanceHandle[]): Promise<{ driver: IaasDriver; adopted: DriverInstance[] }> {
    const key = JSON.stringify([config.type, config.settings]);
    const known = this.entries.get(site);
    if (known && known.key === key) return { driver: known.driver, adopted: [] };
    if (known) await this.close(site);
    const driver = (this.deps.factory ?? createDriver)(config.type, config.settings, this.contextFor(site));
    const unwatch = driver.watch((instance) => this.buffer(site, instance));
    this.entries.set(site, { driver, key, unwatch });
    const toAdopt = handles();
    let adopted: DriverInstance[] = [];
    if (toAdopt.length > 0) {
      try {
        adopted = await driver.adopt(toAdopt);
      } catch (err) {
        // A bad handle (edited state) must not keep the site's driver from working: the listing still finds what runs.
        this.deps.log.warn({ site, err: errorMessage(err) }, 'adopting instances failed');
      }
    }
    this.deps.log.info({ site, type: config.type, adopted: adopted.length }, 'site driver ready');
    return { driver, adopted };
  }

  private contextFor(site: string): DriverContext {
    const { options, dataDir } = this.deps;
    return {
      clock: this.deps.clock,
      log: this.deps.log,
      local: { ...options.local, baseDir: options.local.baseDir ? join(options.local.baseDir, site) : join(dataDir, 'instances', site) },
      sim: options.sim,
    };
  }

  private buffer(site: string, instance: DriverInstance): void {
    let batch = this.pending.get(site);
    if (!batch) this.pending.set(site, (batch = new Map()));
    batch.set(instance.instanceId, instance);
    this.flushTimer ??= this.deps.clock.setTimer(this.deps.options.observeCoalesceMs, () => this.flush());
  }

  private flush(): void {
    this.flushTimer = undefined;
    const batches = [...this.pending];
    this.pending.clear();
    for (const [site, batch] of batches) this.deps.onObserved(site, [...batch.values()]);
  }

  async close(site: string): Promise<void> {
    const entry = this.entries.get(site);
    if (!entry) return;
    this.entries.delete(site);
    entry.unwatch();
    await entry.driver.close().catch((err) => this.deps.log.warn({ site, err: errorMessage(err) }, 'closing a driver failed'));
  }

  /** Closes every driver; their instances stay with the IaaS. */
  async closeAll(): Promise<void> {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    this.pending.clear();
    await Promise.all(this.sites().map((site) => this.close(site)));
  }
}
