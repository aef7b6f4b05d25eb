/**
 * What a CEI role actor may use of the node that hosts it, besides its ActorContext: the cluster's
 * ActorService (to send itself the result of work it started in a turn and finished after it), the
 * membership, the node's data directory, the clock and the logger. The node builds one RoleEnv and
 * hands it to the role types' factories (src/actors/index.ts); tests build one over a single
 * ActorSystem and a FakeClock.
 *
 * `service` and `members` are functions because the node wires them after the actor types are
 * registered (the cluster is built from the types). They are valid from the first turn on.
 */
import type { ActorService } from '../runtime/actor-service.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';

/** A cluster member as roles see it (src/cluster/membership.ts has the whole record). */
export interface RoleMember {
  readonly id: string;
  readonly address: string;
  readonly role: 'bootstrap' | 'control' | 'worker';
  readonly status: 'joining' | 'up' | 'suspect' | 'down' | 'leaving' | 'left';
}

export interface RoleEnv {
  /** Where a role sends messages outside a turn (the cluster's router on a node). */
  service(): ActorService;
  /** The members this node knows now. */
  members(): readonly RoleMember[];
  /**
   * Calls `listener` with the members soon after every change of this node's view (a member joined,
   * was suspected, declared down, left), so a role learns of a crash without polling. Optional: a
   * host without it leaves roles to read `members()` on their own ticks. Returns the unsubscribe.
   * Listeners run outside any turn; they may tell actors through `service()`.
   */
  watchMembers?(listener: (members: readonly RoleMember[]) => void): () => void;
  /** The node's data directory; roles keep files of their own under it (never the node's store). */
  readonly dataDir: string;
  readonly clock: Clock;
  readonly log: Logger;
}
