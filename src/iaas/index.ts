/** The IaaS driver layer, as the provisioner uses it: the contract, its errors, the drivers and the factory. */
export * from './driver.js';
export * from './driver-errors.js';
export * from './driver-factory.js';
export { LocalDriver, LOCAL_DEFAULTS, LOCAL_TEST_PRESET, localLaunchParamsSchema, localOptionsSchema, localSiteSettingsSchema } from './driver-local.js';
export type { LocalDriverConfig, LocalDriverOptions, LocalLaunchParams, LocalSiteSettings } from './driver-local.js';
export { SimDriver, simLaunchParamsSchema, simSiteSettingsSchema } from './driver-sim.js';
export type { SimDriverOptions, SimLaunchParams, SimSiteSettings } from './driver-sim.js';
export { SimCloud, SIM_DEFAULTS, SIM_TEST_PRESET, simCloudOptionsSchema } from './sim-cloud.js';
export type { SimCloudOptions, SimHeartbeat, SimLaunchOverrides } from './sim-cloud.js';
