/**
 * Cluster membership as a state machine over immutable, versioned snapshots (memberlist's
 * Alive -> Suspect -> Dead | Left; Orleans' ClusterMembershipSnapshot). Pure: no I/O, no timers, no
 * clock; callers pass the time in. Gossip, heartbeats and the failure detector live elsewhere and
 * feed this module through `with`, `merge`, `prune` and DownVotes.
 *
 * Life of a member (one incarnation):
 *
 *   joining -> up -> suspect -> down  (declared by a majority of the voters, see DownVotes)
 *                \-> leaving -> left  (graceful leave)
 *
 * `incarnation` is the node's start time in ms, so a restarted node has a higher one. Within one
 * incarnation a member's status only moves forward, in this rank order:
 *
 *   joining < up < suspect < leaving < down < left
 *
 * A suspected node that is in fact alive refutes the suspicion SWIM-style: it announces itself again
 * with a higher incarnation (e.g. max(its incarnation + 1, now)), never by moving back to `up`.
 * A node that restarts on its data directory comes back with a new incarnation (down -> joining -> up).
 *
 * Merge rules (`merge`), per member id:
 *  1. The entry with the higher incarnation wins, whatever the statuses.
 *  2. For equal incarnations the higher-ranked status wins (order above). `suspect` ranks above `up`,
 *     so a stale `up` of the same incarnation never undoes a suspicion.
 *  3. Entries equal in incarnation and status differ only in `since` (the earlier wins: the time the
 *     status was first set), or in `address`/`role`, which are fixed per incarnation and can only
 *     differ through a bug; the greater string wins, so that merging stays deterministic.
 *  4. A member dropped by `prune` leaves a tombstone (id, incarnation, time). An entry whose
 *     incarnation is not above its id's tombstone is dropped, so gossip from a node that has not
 *     pruned yet never resurrects a `down` or `left` member; a restarted node (higher incarnation)
 *     rejoins freely. Tombstones merge by taking the higher (incarnation, time) and expire after a TTL.
 * Rules 1-3 are a total order on entries and merge takes the maximum, so merging is commutative,
 * associative and idempotent in the resulting member set: every node that has seen the same
 * snapshots holds the same members, whatever order gossip brought them in.
 *
 * Versions: `with` and a `prune` that changes something add 1; a `merge` that changes the receiver
 * gives max(receiver, other) + 1, and one that changes nothing returns the receiver itself. A
 * subscriber that keeps the latest snapshot drops any snapshot with a version not above it.
 *
 * Quorum: bootstrap and control members are the voters while joining, up, suspect or leaving;
 * workers never vote, and a member declared down leaves the voting set at once.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';

/** A member's status. Lowercase words, exactly as the public Cluster API reports them. */
export type MemberStatus = 'joining' | 'up' | 'suspect' | 'down' | 'leaving' | 'left';

/** The statuses in merge precedence order: a later one wins over an earlier one of the same incarnation. */
export const MEMBER_STATUSES: readonly MemberStatus[] = Object.freeze(['joining', 'up', 'suspect', 'leaving', 'down', 'left']);

/** A node's role, fixed for the life of an incarnation. */
export type MemberRole = 'bootstrap' | 'control' | 'worker';

/** Every role. */
export const MEMBER_ROLES: readonly MemberRole[] = Object.freeze(['bootstrap', 'control', 'worker']);

/** One node as the membership knows it. Snapshots hold frozen copies. */
export interface Member {
  /** The node id: stable across restarts on the same data directory. */
  readonly id: string;
  /** Where its node-to-node and public gRPC services listen (host:port). */
  readonly address: string;
  readonly role: MemberRole;
  readonly status: MemberStatus;
  /** The node's start time in ms: a restarted node has a higher one. A non-negative safe integer. */
  readonly incarnation: number;
  /** Clock time in ms when this status was set. */
  readonly since: number;
}

/** The record `prune` leaves of a dropped member, so that older gossip does not bring it back. */
export interface Tombstone {
  readonly id: string;
  /** The dropped incarnation: entries of this or an older incarnation are refused. */
  readonly incarnation: number;
  /** Clock time in ms of the drop; the tombstone expires a TTL after it. */
  readonly at: number;
}

/**
 * One member's change between two snapshots. `from` is undefined for a member new to the view; `to`
 * is 'dropped' when it left the view. `from === to` means the member restarted (a new incarnation)
 * and was first seen in the same status. `incarnation` is the new entry's (the dropped one's for
 * 'dropped').
 */
export type MemberChange = {
  readonly id: string;
  readonly from: MemberStatus | undefined;
  readonly to: MemberStatus | 'dropped';
  readonly incarnation: number;
};

/** How long a `down` member stays listed before `prune` drops it by default: 1 hour. */
export const DOWN_DROP_MS = 3_600_000;

/** Whether `value` is one of the MemberStatus words (for decoding what the network sent). */
export function isMemberStatus(value: unknown): value is MemberStatus {
  return typeof value === 'string' && (MEMBER_STATUSES as readonly string[]).includes(value);
}

/** Whether `value` is one of the MemberRole words. */
export function isMemberRole(value: unknown): value is MemberRole {
  return typeof value === 'string' && (MEMBER_ROLES as readonly string[]).includes(value);
}

/** Whether members of `role` vote (bootstrap and control do; workers never do). */
export function isVoterRole(role: MemberRole): boolean {
  return role === 'bootstrap' || role === 'control';
}

const VOTING_STATUSES: ReadonlySet<MemberStatus> = new Set(['joining', 'up', 'suspect', 'leaving']);

/** A status's merge precedence: 0 for joining up to 5 for left (see MEMBER_STATUSES). */
export function statusRank(status: MemberStatus): number {
  return MEMBER_STATUSES.indexOf(status);
}

/**
 * The merge order of two entries for the same member id: > 0 when `a` wins, < 0 when `b` wins, 0 when
 * they are equal in every field. A total order (see rules 1-3 at the top of this file).
 */
export function compareMembers(a: Member, b: Member): number {
  return (
    a.incarnation - b.incarnation ||
    statusRank(a.status) - statusRank(b.status) ||
    b.since - a.since ||
    compareStrings(a.address, b.address) ||
    compareStrings(a.role, b.role)
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Tombstone order: the higher incarnation wins, then the later time. */
function compareTombstones(a: Tombstone, b: Tombstone): number {
  return a.incarnation - b.incarnation || a.at - b.at;
}

/** A frozen copy holding only Member's fields; throws InvalidArgumentError when one is malformed. */
function checkedMember(m: Member): Member {
  if (typeof m !== 'object' || m === null) throw new InvalidArgumentError('member must be an object');
  const where = `member ${JSON.stringify(m.id)}`;
  if (typeof m.id !== 'string' || m.id.length === 0) throw new InvalidArgumentError('member id must be a non-empty string');
  if (typeof m.address !== 'string' || m.address.length === 0) {
    throw new InvalidArgumentError(`${where}: address must be a non-empty string`);
  }
  if (!isMemberRole(m.role)) throw new InvalidArgumentError(`${where}: unknown role ${JSON.stringify(m.role)}`);
  if (!isMemberStatus(m.status)) throw new InvalidArgumentError(`${where}: unknown status ${JSON.stringify(m.status)}`);
  if (!Number.isSafeInteger(m.incarnation) || m.incarnation < 0) {
    throw new InvalidArgumentError(`${where}: incarnation must be a non-negative integer, got ${String(m.incarnation)}`);
  }
  if (!Number.isFinite(m.since)) throw new InvalidArgumentError(`${where}: since must be a finite number, got ${String(m.since)}`);
  return Object.freeze({ id: m.id, address: m.address, role: m.role, status: m.status, incarnation: m.incarnation, since: m.since });
}

function checkedTombstone(t: Tombstone): Tombstone {
  if (typeof t !== 'object' || t === null) throw new InvalidArgumentError('tombstone must be an object');
  if (typeof t.id !== 'string' || t.id.length === 0) throw new InvalidArgumentError('tombstone id must be a non-empty string');
  if (!Number.isSafeInteger(t.incarnation) || t.incarnation < 0) {
    throw new InvalidArgumentError(`tombstone ${JSON.stringify(t.id)}: incarnation must be a non-negative integer`);
  }
  if (!Number.isFinite(t.at)) throw new InvalidArgumentError(`tombstone ${JSON.stringify(t.id)}: at must be a finite number`);
  return Object.freeze({ id: t.id, incarnation: t.incarnation, at: t.at });
}

function sameMember(a: Member | undefined, b: Member | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && compareMembers(a, b) === 0);
}

function sortedMap<T>(entries: Iterable<[string, T]>): Map<string, T> {
  return new Map([...entries].sort(([a], [b]) => compareStrings(a, b)));
}

function sameEntries<T>(a: ReadonlyMap<string, T>, b: ReadonlyMap<string, T>, same: (x: T, y: T) => boolean): boolean {
  if (a.size !== b.size) return false;
  for (const [id, x] of a) {
    const y = b.get(id);
    if (y === undefined || !same(x, y)) return false;
  }
  return true;
}

/**
 * The changes from `before` to `after`, sorted by member id: members added, dropped, changed in
 * status, or seen at a new incarnation. A change of `since` alone is not reported.
 */
export function diffViews(before: MembershipView, after: MembershipView): MemberChange[] {
  const ids = new Set([...before.members.keys(), ...after.members.keys()]);
  const changes: MemberChange[] = [];
  for (const id of [...ids].sort(compareStrings)) {
    const a = before.get(id);
    const b = after.get(id);
    if (b === undefined) {
      if (a !== undefined) changes.push({ id, from: a.status, to: 'dropped', incarnation: a.incarnation });
    } else if (a === undefined) {
      changes.push({ id, from: undefined, to: b.status, incarnation: b.incarnation });
    } else if (a.status !== b.status || a.incarnation !== b.incarnation) {
      changes.push({ id, from: a.status, to: b.status, incarnation: b.incarnation });
    }
  }
  return changes;
}

/** What `merge` and `prune` return: the new snapshot (the receiver itself when nothing changed) and the diff. */
export interface ViewUpdate {
  readonly view: MembershipView;
  readonly changes: MemberChange[];
}

/**
 * An immutable, versioned snapshot of the membership. Every method is pure and returns a new snapshot
 * (or this one when nothing changes); none mutates. Safe to share and to publish to subscribers.
 */
export class MembershipView {
  private static readonly EMPTY = new MembershipView(0, new Map(), new Map());

  /** The snapshot's version: higher is newer (see the top of this file). */
  readonly version: number;
  /** The members by id, in id order. */
  readonly members: ReadonlyMap<string, Member>;
  /** Tombstones of dropped members by id, in id order. */
  readonly tombstones: ReadonlyMap<string, Tombstone>;

  private constructor(version: number, members: ReadonlyMap<string, Member>, tombstones: ReadonlyMap<string, Tombstone>) {
    this.version = version;
    this.members = members;
    this.tombstones = tombstones;
  }

  /** The empty view, version 0. */
  static empty(): MembershipView {
    return MembershipView.EMPTY;
  }

  /**
   * A view holding `members` (and `tombstones`), e.g. decoded from gossip. Throws InvalidArgumentError
   * for a malformed member or tombstone, an id given twice, a member whose incarnation is not above its
   * own tombstone, or a version that is not a non-negative integer (default 0).
   */
  static of(members: Iterable<Member>, options: { version?: number; tombstones?: Iterable<Tombstone> } = {}): MembershipView {
    const version = options.version ?? 0;
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new InvalidArgumentError(`membership version must be a non-negative integer, got ${String(version)}`);
    }
    const tombstones = new Map<string, Tombstone>();
    for (const raw of options.tombstones ?? []) {
      const t = checkedTombstone(raw);
      if (tombstones.has(t.id)) throw new InvalidArgumentError(`tombstone ${JSON.stringify(t.id)} given twice`);
      tombstones.set(t.id, t);
    }
    const byId = new Map<string, Member>();
    for (const raw of members) {
      const m = checkedMember(raw);
      if (byId.has(m.id)) throw new InvalidArgumentError(`member ${JSON.stringify(m.id)} given twice`);
      const t = tombstones.get(m.id);
      if (t !== undefined && m.incarnation <= t.incarnation) {
        throw new InvalidArgumentError(`member ${JSON.stringify(m.id)} incarnation ${m.incarnation} was dropped`);
      }
      byId.set(m.id, m);
    }
    return new MembershipView(version, sortedMap(byId), sortedMap(tombstones));
  }

  /** Number of members. */
  get size(): number {
    return this.members.size;
  }

  /** The member with `id`, or undefined. */
  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** Every member, sorted by id. */
  list(): Member[] {
    return [...this.members.values()];
  }

  /** The voting members, sorted by id: bootstrap and control members that are joining, up, suspect or leaving. */
  voters(): Member[] {
    return this.list().filter((m) => isVoterRole(m.role) && VOTING_STATUSES.has(m.status));
  }

  /**
   * Whether `reachableVoterIds` hold strictly more than half of voters(). Ids that are not voters and
   * repeated ids are ignored, so the caller may pass every node it can reach, itself included. A single
   * voter is its own majority; with no voters at all there is no majority (workers alone never have one).
   */
  hasMajority(reachableVoterIds: Iterable<string>): boolean {
    const voters = new Set(this.voters().map((m) => m.id));
    let reachable = 0;
    for (const id of new Set(reachableVoterIds)) if (voters.has(id)) reachable++;
    return reachable * 2 > voters.size;
  }

  /**
   * This view with `member` set, version + 1; a local transition of the state machine. Returns this
   * same view when the member is already exactly in that status at that incarnation (its `since` is
   * kept). Throws InvalidArgumentError for a malformed member or one whose address or role differ from
   * the current entry of the same incarnation, and FailedPreconditionError for an illegal transition:
   * an incarnation older than the current entry's or than its tombstone, or a status that ranks below
   * the current one within the same incarnation (e.g. suspect -> up: refute with a new incarnation).
   */
  with(member: Member): MembershipView {
    const m = checkedMember(member);
    const current = this.members.get(m.id);
    const where = `member ${JSON.stringify(m.id)}`;
    const tombstone = this.tombstones.get(m.id);
    if (tombstone !== undefined && m.incarnation <= tombstone.incarnation) {
      throw new FailedPreconditionError(`${where} incarnation ${m.incarnation} was dropped; a restarted node rejoins with a higher one`);
    }
    if (current !== undefined) {
      if (m.incarnation < current.incarnation) {
        throw new FailedPreconditionError(`${where} is at incarnation ${current.incarnation}; ${m.incarnation} is stale`);
      }
      if (m.incarnation === current.incarnation) {
        if (m.address !== current.address || m.role !== current.role) {
          throw new InvalidArgumentError(`${where}: address and role are fixed for incarnation ${m.incarnation}`);
        }
        if (m.status === current.status) return this;
        if (statusRank(m.status) < statusRank(current.status)) {
          throw new FailedPreconditionError(
            `${where} cannot go from ${current.status} back to ${m.status} within incarnation ${m.incarnation}`,
          );
        }
      }
    }
    const members = new Map(this.members);
    members.set(m.id, m);
    return new MembershipView(this.version + 1, current === undefined ? sortedMap(members) : members, this.tombstones);
  }

  /**
   * This view merged with `other` by the rules at the top of this file. `view` is this same snapshot
   * when `other` brings nothing new (changes is then []); otherwise its version is
   * max(this.version, other.version) + 1 and `changes` lists what changed for this node's subscribers.
   */
  merge(other: MembershipView): ViewUpdate {
    const tombstones = new Map(this.tombstones);
    for (const [id, t] of other.tombstones) {
      const mine = tombstones.get(id);
      if (mine === undefined || compareTombstones(t, mine) > 0) tombstones.set(id, t);
    }
    const members = new Map<string, Member>();
    for (const id of new Set([...this.members.keys(), ...other.members.keys()])) {
      const a = this.members.get(id);
      const b = other.members.get(id);
      const winner = a === undefined ? b : b === undefined ? a : compareMembers(a, b) >= 0 ? a : b;
      if (winner === undefined) continue;
      const t = tombstones.get(id);
      if (t !== undefined && winner.incarnation <= t.incarnation) continue;
      members.set(id, winner);
    }
    if (sameEntries(this.members, members, sameMember) && sameEntries(this.tombstones, tombstones, (x, y) => compareTombstones(x, y) === 0)) {
      return { view: this, changes: [] };
    }
    const view = new MembershipView(Math.max(this.version, other.version) + 1, sortedMap(members), sortedMap(tombstones));
    return { view, changes: diffViews(this, view) };
  }

  /**
   * Drops members that are `left`, or `down` since at least `downDropMs` before `now`, leaving a
   * tombstone for each (at `now`), and expires tombstones at least `tombstoneTtlMs` old (default: the
   * same as downDropMs, by which time every node has pruned the member too). Version + 1 when anything
   * changed; otherwise this same view. Throws RangeError for a non-finite `now` or a negative duration.
   */
  prune(now: number, downDropMs: number = DOWN_DROP_MS, tombstoneTtlMs: number = downDropMs): ViewUpdate {
    if (!Number.isFinite(now)) throw new RangeError(`prune time must be finite, got ${String(now)}`);
    if (!(downDropMs >= 0) || !(tombstoneTtlMs >= 0)) {
      throw new RangeError(`prune durations must be >= 0, got ${String(downDropMs)} and ${String(tombstoneTtlMs)}`);
    }
    const tombstones = new Map<string, Tombstone>();
    for (const [id, t] of this.tombstones) if (now - t.at < tombstoneTtlMs) tombstones.set(id, t);
    const members = new Map<string, Member>();
    for (const [id, m] of this.members) {
      if (m.status === 'left' || (m.status === 'down' && now - m.since >= downDropMs)) {
        const t = Object.freeze({ id, incarnation: m.incarnation, at: now });
        const old = tombstones.get(id);
        tombstones.set(id, old === undefined || compareTombstones(t, old) > 0 ? t : old);
      } else {
        members.set(id, m);
      }
    }
    if (members.size === this.members.size && sameEntries(this.tombstones, tombstones, (x, y) => x === y)) {
      return { view: this, changes: [] };
    }
    const view = new MembershipView(this.version + 1, members, sortedMap(tombstones));
    return { view, changes: diffViews(this, view) };
  }
}

/** One recorded suspicion: `voter` suspects `member` at `incarnation`. */
export interface DownVote {
  readonly voter: string;
  readonly member: string;
  readonly incarnation: number;
}

/**
 * The votes for declaring members down: who suspects whom, at which incarnation. A member is declared
 * down when strictly more than half of the view's current voters suspect it at its current
 * incarnation (`verdicts`). Pure bookkeeping with no I/O and no clock; unlike MembershipView it is
 * mutable (one per node, fed by the local detector and by the votes other voters gossip). Any id
 * may be recorded as a voter; only who is a voter in the view given to `verdicts` decides what counts,
 * so a worker's suspicion, a down voter's, a self-suspicion or one about an older incarnation never counts.
 */
export class DownVotes {
  /** member id -> voter id -> incarnation suspected. */
  private readonly votes = new Map<string, Map<string, number>>();

  /**
   * Records that `voterId` suspects `memberId` at `incarnation`, replacing that voter's earlier vote
   * about the member. Throws InvalidArgumentError for an empty id and RangeError for an incarnation
   * that is not a non-negative integer.
   */
  suspect(voterId: string, memberId: string, incarnation: number): void {
    if (typeof voterId !== 'string' || voterId.length === 0 || typeof memberId !== 'string' || memberId.length === 0) {
      throw new InvalidArgumentError('down vote voter and member ids must be non-empty strings');
    }
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new RangeError(`down vote incarnation must be a non-negative integer, got ${String(incarnation)}`);
    }
    let byVoter = this.votes.get(memberId);
    if (byVoter === undefined) {
      byVoter = new Map();
      this.votes.set(memberId, byVoter);
    }
    byVoter.set(voterId, incarnation);
  }

  /** Withdraws `voterId`'s vote about `memberId` (e.g. its heartbeats came back); no-op when there is none. */
  clear(voterId: string, memberId: string): void {
    const byVoter = this.votes.get(memberId);
    if (byVoter === undefined) return;
    byVoter.delete(voterId);
    if (byVoter.size === 0) this.votes.delete(memberId);
  }

  /** Withdraws every vote about `memberId` (e.g. once it is declared down or dropped). */
  forget(memberId: string): void {
    this.votes.delete(memberId);
  }

  /** Every recorded vote, sorted by member then voter (e.g. to gossip them). */
  list(): DownVote[] {
    const out: DownVote[] = [];
    for (const member of [...this.votes.keys()].sort(compareStrings)) {
      const byVoter = this.votes.get(member) as Map<string, number>;
      for (const voter of [...byVoter.keys()].sort(compareStrings)) {
        out.push({ voter, member, incarnation: byVoter.get(voter) as number });
      }
    }
    return out;
  }

  /**
   * The ids (sorted) of the members of `view` that are not already down or left and that strictly
   * more than half of view.voters() suspect at the member's current incarnation. Votes by non-voters
   * (workers, down or left members, unknown ids), by the member about itself, or about another
   * incarnation do not count; the suspected member, if a voter, still counts in the total.
   */
  verdicts(view: MembershipView): string[] {
    const voters = view.voters();
    const voterIds = new Set(voters.map((m) => m.id));
    const out: string[] = [];
    for (const member of view.list()) {
      if (member.status === 'down' || member.status === 'left') continue;
      const byVoter = this.votes.get(member.id);
      if (byVoter === undefined) continue;
      let count = 0;
      for (const [voter, incarnation] of byVoter) {
        if (voter !== member.id && voterIds.has(voter) && incarnation === member.incarnation) count++;
      }
      if (count * 2 > voters.length) out.push(member.id);
    }
    return out;
  }

  /**
   * Drops the votes that cannot count in `view` and could only count later by being cast again: votes
   * about members that are down or left or whose incarnation there is newer than the vote's, about a
   * dropped incarnation (tombstone), by a member about itself, and by members of `view` that are not
   * voters (workers, down or left). Votes by ids or about members `view` does not know yet, or about an
   * incarnation newer than the view's, are kept: gossip may bring the view up to date. Keeps the
   * bookkeeping bounded; verdicts() gives the same answer for `view` before and after.
   */
  prune(view: MembershipView): void {
    const voterIds = new Set(view.voters().map((m) => m.id));
    for (const [memberId, byVoter] of this.votes) {
      const member = view.get(memberId);
      if (member !== undefined && (member.status === 'down' || member.status === 'left')) {
        this.votes.delete(memberId);
        continue;
      }
      const tombstone = view.tombstones.get(memberId);
      for (const [voter, incarnation] of byVoter) {
        const stale =
          (member !== undefined && incarnation < member.incarnation) ||
          (tombstone !== undefined && incarnation <= tombstone.incarnation);
        const notVoter = view.get(voter) !== undefined && !voterIds.has(voter);
        if (stale || notVoter || voter === memberId) byVoter.delete(voter);
      }
      if (byVoter.size === 0) this.votes.delete(memberId);
    }
  }
}
