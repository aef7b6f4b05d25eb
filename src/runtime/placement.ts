import type { ActorRef } from './ref.js';
import type { Op } from './group-commit.js';
import type { WriteDone } from './write-done.js';

/**
 * Where actors live, as the local runtime needs to know it. The runtime knows nothing of other nodes;
 * the cluster implements this (src/cluster/) and a single node runs with LOCAL_PLACEMENT.
 */
export interface Placement {
  /**
   * Throws a retryable error (UnavailableError) unless this node may host `ref` now: it owns the
   * actor and nothing is still being handed over to it. Called before an actor is activated.
   */
  checkOwner(ref: ActorRef): void;
  /** True when this node owns `ref` (used to pick which stored actors to recover and list). */
  owns(ref: ActorRef): boolean;
  /** Other nodes holding copies of `ref` (for describe, and to see a loaded actor's replicas moved). */
  replicasOf(ref: ActorRef): string[];
  /** The ownership epoch this node holds `ref` under (for describe). */
  epochOf(ref: ActorRef): number;
  /**
   * Why every copy of `ref` is out of reach (the nodes that held it are down), or undefined. Asked
   * when an actor with nothing stored here is activated, so that it is not recreated empty.
   */
  lostCopies?(ref: ActorRef): string | undefined;
}

export const LOCAL_PLACEMENT: Placement = {
  checkOwner() {},
  owns: () => true,
  replicasOf: () => [],
  epochOf: () => 0,
};

/**
 * Copies an actor's writes to its replicas. `replicate` resolves once every live replica has the ops
 * durably (or has left the replica set), and rejects when this node may no longer write for the
 * actor (a replica saw a newer owner). Returns undefined when there is nothing to replicate to.
 */
export interface Replicator {
  /** The replicas `ref` has under the current rings (a cell pins them when it loads). */
  replicasFor(ref: ActorRef, key: string): readonly string[];
  /**
   * Sends `ops` to `replicas` (at least one) in order with the actor's other writes; `done` runs once
   * every replica has them durably, or with the first failure. With `seed`, the ops are the owner's
   * whole copy of the actor: each replica replaces what it holds of the actor with them.
   */
  replicate(ref: ActorRef, key: string, ops: Op[], sync: boolean, replicas: readonly string[], done: WriteDone, seed?: boolean): void;
}
