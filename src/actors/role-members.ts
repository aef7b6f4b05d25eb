/**
 * The membership feed a node gives its roles (RoleEnv.watchMembers): listeners are called with the
 * members soon after every new snapshot of the node's view.
 *
 * The cluster publishes its view as immutable snapshots (src/cluster/membership.ts), a new object on
 * every change, but offers no subscription to them outside the cluster module. The feed therefore
 * watches the snapshot's identity every `intervalMs` (a pointer comparison: free) while it has
 * listeners, which tells a role of a crash within that interval of the cluster declaring it. Should
 * the cluster gain a view subscription, only `MembersFeed.changed` needs calling from it.
 *
 * Listeners are called outside any actor turn, one after another; one that throws is logged and the
 * others still run.
 */
import type { Clock, TimerHandle } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { errorMessage } from '../errors.js';
import type { RoleMember } from './role-env.js';

export type MembersListener = (members: readonly RoleMember[]) => void;

export class MembersFeed {
  private readonly listeners = new Set<MembersListener>();
  private last: unknown;
  private timer: TimerHandle | undefined;
  private stopped = false;

  /**
   * @param snapshot the current view snapshot (compared by identity), or undefined before there is one
   * @param members the members of the current snapshot
   */
  constructor(
    private readonly snapshot: () => unknown,
    private readonly members: () => readonly RoleMember[],
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly intervalMs = 50,
  ) {}

  /** Adds a listener; returns its removal. */
  watch = (listener: MembersListener): (() => void) => {
    this.listeners.add(listener);
    if (this.last === undefined) this.last = this.snapshot();
    this.schedule();
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** Checks for a new snapshot now (and calls the listeners if there is one). */
  changed(): void {
    const now = this.snapshot();
    if (now === this.last || now === undefined) return;
    this.last = now;
    const members = this.members();
    for (const l of [...this.listeners]) {
      try {
        l(members);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'a membership listener failed');
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.listeners.clear();
  }

  private schedule(): void {
    if (this.timer || this.stopped || this.listeners.size === 0) return;
    this.timer = this.clock.setTimer(this.intervalMs, () => {
      this.timer = undefined;
      this.changed();
      this.schedule();
    });
  }
}
