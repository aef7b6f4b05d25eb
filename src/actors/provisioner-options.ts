/**
 * How the provisioner runs: one typed object with documented defaults and a test preset. The host
 * (src/node.ts) passes it to `provisionerType`; nothing here is per site (site settings live in the
 * deployable type registry) or per request.
 */
import type { LocalDriverOptions } from '../iaas/driver-local.js';
import type { SimCloudOptions } from '../iaas/sim-cloud.js';

export interface ProvisionerOptions {
  /** How often records are reconciled with each site's driver and the membership. */
  reconcileIntervalMs: number;
  /** An instance launched this long ago (entered PENDING) and not RUNNING becomes RUNNING_FAILED. */
  readyTimeoutMs: number;
  /** Bound of one ask to the deployable type registry (a provision's turn waits for it). */
  lookupTimeoutMs: number;
  /** First and largest delay between launch retries (doubling in between); no jitter, so tests can time it. */
  launchRetryInitialMs: number;
  launchRetryMaxMs: number;
  /** Launch attempts before a retryable failure (IAAS_UNAVAILABLE, IAAS_TIMEOUT) becomes FAILED. */
  launchMaxAttempts: number;
  /** A terminate that failed or was lost is asked for again after this long. */
  terminateRetryMs: number;
  /** Final records (TERMINATED, FAILED, REJECTED) are forgotten this long after they became final. */
  retainFinalMs: number;
  /** At most this many instances per message to a subscriber (a turn's changes go in several if more). */
  notifyBatch: number;
  /** Driver observations are coalesced this long before they are sent to the actor as one message. */
  observeCoalesceMs: number;
  /** Options of local drivers; `baseDir` defaults to `<node data dir>/instances`. */
  local: Partial<LocalDriverOptions>;
  /** Options of the cloud behind each sim driver. */
  sim: Partial<SimCloudOptions>;
}

export const PROVISIONER_DEFAULTS: ProvisionerOptions = {
  reconcileIntervalMs: 1_000,
  // A local worker starts in about 0.3 s; a real VM in minutes. Generous, since RUNNING_FAILED is final.
  readyTimeoutMs: 120_000,
  lookupTimeoutMs: 5_000,
  launchRetryInitialMs: 1_000,
  launchRetryMaxMs: 30_000,
  launchMaxAttempts: 5,
  terminateRetryMs: 5_000,
  retainFinalMs: 60 * 60_000,
  notifyBatch: 500,
  observeCoalesceMs: 20,
  local: {},
  sim: {},
};

/** Short intervals for tests. */
export const PROVISIONER_TEST_PRESET: ProvisionerOptions = {
  ...PROVISIONER_DEFAULTS,
  reconcileIntervalMs: 100,
  readyTimeoutMs: 20_000,
  lookupTimeoutMs: 2_000,
  launchRetryInitialMs: 100,
  launchRetryMaxMs: 1_000,
  launchMaxAttempts: 3,
  terminateRetryMs: 500,
  retainFinalMs: 60_000,
  observeCoalesceMs: 5,
};
