import type { PhiOptions } from './failure-detector.js';
import { DOWN_DROP_MS } from './membership.js';

/**
 * Cluster settings. Defaults are chosen for failover within a second of a SIGKILL: a dropped link
 * is noticed in milliseconds and suspected after `linkGraceMs`; a hung peer is noticed by the phi
 * detector from 100 ms heartbeats in about 0.6 s; a majority of voters then declares it down at once.
 */
export interface ClusterOptions {
  /** Copies of each actor: the owner and replicas - 1 more nodes (--replicas). */
  replicas: number;
  heartbeatIntervalMs: number;
  /** Full views go to every peer on each change; besides, one random peer gets ours this often. */
  gossipIntervalMs: number;
  /** How often suspicion, votes and fencing are re-evaluated. */
  tickMs: number;
  /** A peer whose link dropped and has not come back within this long is suspected. */
  linkGraceMs: number;
  phi: Partial<PhiOptions>;
  /** A fresh bootstrap node whose seeds never answer starts a new cluster after this long. */
  joinTimeoutMs: number;
  /** A member down this long is dropped from the view. */
  downDropMs: number;
  /** Node-to-node requests fail after this long. */
  requestTimeoutMs: number;
  /** How long a forwarded call keeps retrying while ownership settles (moves, fail-overs). */
  routeTimeoutMs: number;
  /** Actors handed over or copied per request while rebalancing. */
  handoffBatch: number;
}

export const CLUSTER_DEFAULTS: ClusterOptions = {
  replicas: 2,
  heartbeatIntervalMs: 100,
  gossipIntervalMs: 500,
  tickMs: 50,
  linkGraceMs: 150,
  // A hung peer (SIGSTOP) is flagged after about 1.4 s of silence: mean 100 + pause 1000 + 5.22 *
  // min std dev 50. A shorter pause made loaded 2-core machines suspect healthy peers during GC
  // pauses and hand-off bursts; a dead process resets its links and is caught by linkGraceMs instead.
  phi: { acceptableHeartbeatPauseMs: 1_000 },
  joinTimeoutMs: 3_000,
  downDropMs: DOWN_DROP_MS,
  requestTimeoutMs: 10_000,
  routeTimeoutMs: 15_000,
  handoffBatch: 200,
};

/** Short intervals for tests that drive a cluster on a fake clock or on loopback. */
export const CLUSTER_TEST_PRESET: ClusterOptions = {
  ...CLUSTER_DEFAULTS,
  heartbeatIntervalMs: 20,
  gossipIntervalMs: 100,
  tickMs: 10,
  linkGraceMs: 40,
  joinTimeoutMs: 300,
  requestTimeoutMs: 2_000,
  routeTimeoutMs: 3_000,
};
