/**
 * How HA services run on a node: one typed object with documented defaults and a test preset.
 * Per-service settings (policy, parameters, dispatchers, tick) live in each service's config
 * (./protocol.ts); these are the node's.
 */
export interface HaOptions {
  /** How often a service decides when its config names no `tick_seconds`. */
  tickMs: number;
  /** Bound of each ask a service makes to a dispatcher or reads a sensor with, and of the registry's asks. */
  askTimeoutMs: number;
  /** A process the service scheduled that no dispatcher knows this long after is dropped (its schedule was lost). */
  scheduleGraceMs: number;
  /** Sensor samples kept per service (besides those older than the policy's sample period). */
  maxSamples: number;
  /** Final processes a service's description keeps. */
  finalShown: number;
}

export const HA_DEFAULTS: HaOptions = {
  tickMs: 1_000,
  askTimeoutMs: 10_000,
  scheduleGraceMs: 30_000,
  maxSamples: 600,
  finalShown: 10,
};

/** Short intervals for tests. */
export const HA_TEST_PRESET: HaOptions = {
  ...HA_DEFAULTS,
  tickMs: 100,
  askTimeoutMs: 3_000,
  scheduleGraceMs: 5_000,
};
