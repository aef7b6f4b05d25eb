/**
 * Creates the driver for a site from its type and settings, as the deployable type registry stores
 * them. Settings are validated here, before anything starts: a bad site is an INVALID_ARGUMENT that
 * names every bad field, never a driver that fails later.
 *
 * Site settings are what a user registered (snake_case, proto/cei/v1/dtrs.proto); how a driver runs
 * (timeouts, polling, the sim's latencies and seed) are the host's options, passed in the context.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { SITE_TYPES, type IaasDriver, type SiteType } from './driver.js';
import { LocalDriver, type LocalDriverOptions } from './driver-local.js';
import { SimDriver, simSiteSettingsSchema } from './driver-sim.js';
import { parseSettings } from './driver-settings.js';
import { SimCloud, type SimCloudOptions } from './sim-cloud.js';

export interface DriverContext {
  clock?: Clock;
  log?: Logger;
  /** Options of local drivers (LOCAL_DEFAULTS otherwise); `baseDir` serves sites without a data_dir. */
  local?: Partial<LocalDriverOptions>;
  /** Options of the cloud behind each sim driver (SIM_DEFAULTS otherwise). */
  sim?: Partial<SimCloudOptions>;
}

/** How the provisioner obtains a driver; tests substitute one (e.g. SimDrivers over a shared SimCloud). */
export type DriverFactory = (siteType: SiteType, settings: unknown, context?: DriverContext) => IaasDriver;

/**
 * A new driver for a `local` or `sim` site. A `sim` driver gets a SimCloud of its own, stopped when
 * the driver is closed; to share one cloud between drivers, construct SimDrivers over it directly.
 * Throws InvalidArgumentError for an unknown site type or bad settings or options.
 */
export const createDriver: DriverFactory = (siteType, settings, context = {}) => {
  const deps = { clock: context.clock, log: context.log };
  switch (siteType) {
    case 'local':
      return new LocalDriver(settings, context.local, deps);
    case 'sim': {
      const site = parseSettings(simSiteSettingsSchema, settings, 'sim site settings');
      const options = { ...context.sim, ...(site.capacity !== undefined && { capacity: site.capacity }) };
      return new SimDriver(new SimCloud(options, deps), { ownsCloud: true });
    }
    default:
      throw new InvalidArgumentError(`unknown site type ${JSON.stringify(siteType)}: expected one of ${SITE_TYPES.join(', ')}`);
  }
};
