/**
 * The `sim` driver: the IaasDriver contract over a SimCloud (sim-cloud.ts). The cloud holds the
 * instances; the driver only validates and forwards, so several drivers over one cloud behave like
 * successive incarnations of a provisioner over one real IaaS account.
 */
import { z } from 'zod';
import { FailedPreconditionError } from '../errors.js';
import {
  validateInstanceId,
  validateLaunchRequest,
  type DriverInstance,
  type DriverListener,
  type IaasDriver,
  type InstanceHandle,
  type LaunchRequest,
} from './driver.js';
import { parseSettings } from './driver-settings.js';
import type { SimCloud } from './sim-cloud.js';

/** A sim site's settings as the registry stores them (proto/cei/v1/dtrs.proto). */
export const simSiteSettingsSchema = z.strictObject({
  /** Live instances the site takes; past it launches fail with IAAS_FULL. The cloud's option when absent. */
  capacity: z.number().int('capacity must be a whole number').min(0, 'capacity must be >= 0').optional(),
});
export type SimSiteSettings = z.output<typeof simSiteSettingsSchema>;

/** A sim launch's parameters as the registry resolves them (proto/cei/v1/dtrs.proto). */
export const simLaunchParamsSchema = z.strictObject({
  /** The execution engine's business, not the IaaS's: accepted, since every resolved launch has it. */
  slots: z.number().int('slots must be a whole number').min(1, 'slots must be >= 1').optional(),
  /** From launch to running, for this launch. */
  boot_latency_ms: z.number().int('boot_latency_ms must be whole milliseconds').min(0, 'boot_latency_ms must be >= 0').optional(),
  /** Chance that each instance of this launch fails to boot. */
  failure_rate: z.number().min(0, 'failure_rate must be between 0 and 1').max(1, 'failure_rate must be between 0 and 1').optional(),
});
export type SimLaunchParams = z.output<typeof simLaunchParamsSchema>;

export interface SimDriverOptions {
  /** Stop the cloud on close(): for a driver that created its own cloud (createDriver does). */
  ownsCloud?: boolean;
}

export class SimDriver implements IaasDriver {
  readonly siteType = 'sim' as const;
  private readonly unsubscribes = new Set<() => void>();
  private closed = false;

  constructor(
    readonly cloud: SimCloud,
    private readonly options: SimDriverOptions = {},
  ) {}

  async launch(request: LaunchRequest): Promise<DriverInstance[]> {
    this.checkOpen();
    validateLaunchRequest(request);
    const params = parseSettings(simLaunchParamsSchema, request.params, 'sim launch params');
    return this.cloud.launch(request.instanceIds, {
      ...(params.boot_latency_ms !== undefined && { bootLatencyMs: params.boot_latency_ms }),
      ...(params.failure_rate !== undefined && { failureRate: params.failure_rate }),
    });
  }

  async terminate(instanceIds: readonly string[]): Promise<DriverInstance[]> {
    this.checkOpen();
    for (const id of instanceIds) validateInstanceId(id);
    return this.cloud.terminate(instanceIds);
  }

  async list(): Promise<DriverInstance[]> {
    this.checkOpen();
    return this.cloud.list();
  }

  async adopt(handles: readonly InstanceHandle[]): Promise<DriverInstance[]> {
    this.checkOpen();
    for (const handle of handles) validateInstanceId(handle.instanceId);
    return this.cloud.describe(handles.map((h) => h.instanceId));
  }

  watch(listener: DriverListener): () => void {
    this.checkOpen();
    const unsubscribe = this.cloud.watch(listener);
    const remove = (): void => {
      unsubscribe();
      this.unsubscribes.delete(remove);
    };
    this.unsubscribes.add(remove);
    return remove;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const unsubscribe of [...this.unsubscribes]) unsubscribe();
    if (this.options.ownsCloud) this.cloud.stop();
  }

  private checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the sim driver is closed');
  }
}
