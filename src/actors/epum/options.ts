/**
 * How EPU management runs on a node: one typed object with documented defaults and a test preset.
 * Per-domain settings (the engine, its conf, health timeouts, the tick) live in each domain's config
 * (./protocol.ts); these are the node's.
 */
export interface EpumOptions {
  /** How often a domain decides when its config names no `tick_seconds`. */
  tickMs: number;
  /** Bound of the asks a domain or the registry makes in a turn (the registry, DTRS checks). */
  askTimeoutMs: number;
  /** A provision the provisioner has not reported on this long after it was told is told again (idempotent by launch id). */
  launchRetryMs: number;
  /** A termination the provisioner has not acknowledged this long after it was told is told again. */
  terminateRetryMs: number;
  /** Final instances (TERMINATED, FAILED, REJECTED) stay in a domain's view this long ... */
  retainFinalMs: number;
  /** ... and at most this many of them (the oldest go first). */
  maxFinalInstances: number;
  /** Sensor samples older than this are dropped (sensor series are kept in memory). */
  sensorWindowMs: number;
  /** At most this many samples per series. */
  maxSamplesPerSeries: number;
  /** Bound of one sensor read (an actor's mailbox depth, from wherever the actor lives). */
  sensorReadTimeoutMs: number;
}

export const EPUM_DEFAULTS: EpumOptions = {
  tickMs: 1_000,
  askTimeoutMs: 10_000,
  // The provisioner's provision turn may wait up to its lookup timeout (5 s) on the registry.
  launchRetryMs: 15_000,
  terminateRetryMs: 15_000,
  retainFinalMs: 10 * 60_000,
  maxFinalInstances: 100,
  sensorWindowMs: 5 * 60_000,
  maxSamplesPerSeries: 600,
  sensorReadTimeoutMs: 1_000,
};

/** Short intervals for tests. */
export const EPUM_TEST_PRESET: EpumOptions = {
  ...EPUM_DEFAULTS,
  tickMs: 100,
  askTimeoutMs: 3_000,
  launchRetryMs: 2_000,
  terminateRetryMs: 2_000,
  retainFinalMs: 60_000,
  sensorReadTimeoutMs: 500,
};
