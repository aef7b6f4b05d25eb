import { describe, expect, it } from 'vitest';
import {
  DOWN_DROP_MS,
  DownVotes,
  MEMBER_ROLES,
  MEMBER_STATUSES,
  MembershipView,
  compareMembers,
  diffViews,
  isMemberRole,
  isMemberStatus,
  isVoterRole,
  statusRank,
  type Member,
  type MemberRole,
  type MemberStatus,
  type Tombstone,
} from '../../../src/cluster/membership.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../../src/errors.js';
import { pick, randomInt, seededRandom, shuffled } from '../../support/seeded-random.js';

function member(id: string, overrides: Partial<Member> = {}): Member {
  return { id, address: `${id}.local:7000`, role: 'control', status: 'up', incarnation: 1_000, since: 0, ...overrides };
}

function view(members: Member[], options: { version?: number; tombstones?: Tombstone[] } = {}): MembershipView {
  return MembershipView.of(members, options);
}

function statuses(v: MembershipView): Record<string, string> {
  return Object.fromEntries(v.list().map((m) => [m.id, `${m.status}@${m.incarnation}`]));
}

describe('statuses and roles', () => {
  it('MEMBER_STATUSES is the merge precedence joining < up < suspect < leaving < down < left', () => {
    expect(MEMBER_STATUSES).toEqual(['joining', 'up', 'suspect', 'leaving', 'down', 'left']);
    expect(MEMBER_STATUSES.map(statusRank)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(statusRank('suspect')).toBeGreaterThan(statusRank('up'));
  });

  it('recognises exactly the lowercase words', () => {
    for (const s of MEMBER_STATUSES) expect(isMemberStatus(s)).toBe(true);
    for (const r of MEMBER_ROLES) expect(isMemberRole(r)).toBe(true);
    for (const bad of ['UP', 'dead', '', undefined, 3]) expect(isMemberStatus(bad)).toBe(false);
    for (const bad of ['Worker', 'voter', null]) expect(isMemberRole(bad)).toBe(false);
  });

  it('only bootstrap and control roles vote', () => {
    expect(MEMBER_ROLES.filter(isVoterRole)).toEqual(['bootstrap', 'control']);
  });
});

describe('MembershipView construction', () => {
  it('the empty view has version 0 and no members', () => {
    const v = MembershipView.empty();
    expect(v.version).toBe(0);
    expect(v.size).toBe(0);
    expect(v.list()).toEqual([]);
    expect(v.voters()).toEqual([]);
    expect(v.tombstones.size).toBe(0);
  });

  it('lists members sorted by id and holds frozen copies of their fields only', () => {
    const raw = { ...member('b'), extra: 'dropped' } as Member;
    const v = view([raw, member('c'), member('a')], { version: 7 });
    expect(v.version).toBe(7);
    expect(v.list().map((m) => m.id)).toEqual(['a', 'b', 'c']);
    expect([...v.members.keys()]).toEqual(['a', 'b', 'c']);
    expect(v.get('b')).toEqual(member('b'));
    expect(Object.isFrozen(v.get('b'))).toBe(true);
    (raw as { status: MemberStatus }).status = 'down';
    expect(v.get('b')?.status).toBe('up');
    expect(v.get('z')).toBeUndefined();
  });

  const malformed: Array<[string, Partial<Member>]> = [
    ['empty id', { id: '' }],
    ['empty address', { address: '' }],
    ['unknown role', { role: 'voter' as MemberRole }],
    ['unknown status', { status: 'dead' as MemberStatus }],
    ['negative incarnation', { incarnation: -1 }],
    ['fractional incarnation', { incarnation: 1.5 }],
    ['NaN since', { since: Number.NaN }],
  ];
  it.each(malformed)('rejects a member with %s', (_name, overrides) => {
    expect(() => view([member('a', overrides)])).toThrow(InvalidArgumentError);
    expect(() => MembershipView.empty().with(member('a', overrides))).toThrow(InvalidArgumentError);
  });

  it('rejects duplicate ids, duplicate tombstones, a bad version and a member of a dropped incarnation', () => {
    expect(() => view([member('a'), member('a', { status: 'down' })])).toThrow(/given twice/);
    const t: Tombstone = { id: 'x', incarnation: 5, at: 0 };
    expect(() => view([], { tombstones: [t, t] })).toThrow(InvalidArgumentError);
    expect(() => view([], { version: -1 })).toThrow(InvalidArgumentError);
    expect(() => view([], { version: 0.5 })).toThrow(InvalidArgumentError);
    expect(() => view([member('x', { incarnation: 5 })], { tombstones: [t] })).toThrow(/dropped/);
    expect(view([member('x', { incarnation: 6 })], { tombstones: [t] }).get('x')?.incarnation).toBe(6);
  });
});

describe('voters and majority', () => {
  const mixed = view([
    member('b0', { role: 'bootstrap' }),
    member('c1', { status: 'joining' }),
    member('c2', { status: 'suspect' }),
    member('c3', { status: 'leaving' }),
    member('c4', { status: 'down' }),
    member('c5', { status: 'left' }),
    member('w1', { role: 'worker' }),
    member('w2', { role: 'worker', status: 'joining' }),
  ]);

  it('voters are bootstrap and control members that are joining, up, suspect or leaving, sorted', () => {
    expect(mixed.voters().map((m) => m.id)).toEqual(['b0', 'c1', 'c2', 'c3']);
  });

  it('a majority is strictly more than half of the voters', () => {
    const three = view([member('a'), member('b'), member('c'), member('w', { role: 'worker' })]);
    expect(three.hasMajority(['a', 'b'])).toBe(true);
    expect(three.hasMajority(['a'])).toBe(false);
    expect(three.hasMajority(['a', 'w'])).toBe(false);
    const four = view([member('a'), member('b'), member('c'), member('d')]);
    expect(four.hasMajority(['a', 'b'])).toBe(false);
    expect(four.hasMajority(['a', 'b', 'c'])).toBe(true);
    expect(mixed.hasMajority(['b0', 'c1', 'c4', 'c5', 'w1', 'w2'])).toBe(false);
    expect(mixed.hasMajority(['b0', 'c1', 'c2'])).toBe(true);
  });

  it('a single voter is its own majority; two voters need each other', () => {
    const single = view([member('boot', { role: 'bootstrap' }), member('w', { role: 'worker' })]);
    expect(single.hasMajority(['boot'])).toBe(true);
    expect(single.hasMajority(['w'])).toBe(false);
    const two = view([member('a'), member('b')]);
    expect(two.hasMajority(['a'])).toBe(false);
    expect(two.hasMajority(['a', 'b'])).toBe(true);
  });

  it('ignores repeated and unknown ids, and accepts any iterable', () => {
    const three = view([member('a'), member('b'), member('c')]);
    expect(three.hasMajority(['a', 'a', 'a', 'zz'])).toBe(false);
    expect(three.hasMajority(new Set(['a', 'c']))).toBe(true);
  });

  it('a voter declared down leaves the voting set at once', () => {
    let v = view([member('a'), member('b'), member('c')]);
    expect(v.hasMajority(['a'])).toBe(false);
    v = v.with(member('c', { status: 'down', since: 5 }));
    expect(v.voters().map((m) => m.id)).toEqual(['a', 'b']);
    expect(v.hasMajority(['a', 'b'])).toBe(true);
    expect(v.hasMajority(['a', 'c'])).toBe(false);
  });

  it('workers alone never have a majority', () => {
    const workers = view([member('w1', { role: 'worker' }), member('w2', { role: 'worker' })]);
    expect(workers.hasMajority(['w1', 'w2'])).toBe(false);
  });
});

describe('MembershipView.with (local transitions)', () => {
  it('sets a member, adds 1 to the version and leaves the original unchanged', () => {
    const v0 = view([member('a')], { version: 3 });
    const v1 = v0.with(member('b', { status: 'joining' }));
    expect(v1.version).toBe(4);
    expect(v1.list().map((m) => m.id)).toEqual(['a', 'b']);
    expect(v0.list().map((m) => m.id)).toEqual(['a']);
    const v2 = v1.with(member('a', { status: 'suspect', since: 9 }));
    expect(v2.version).toBe(5);
    expect(v2.get('a')?.status).toBe('suspect');
    expect(v1.get('a')?.status).toBe('up');
    expect([...v2.members.keys()]).toEqual(['a', 'b']);
  });

  it('returns the same view when the member already has that status at that incarnation', () => {
    const v = view([member('a', { status: 'suspect', since: 10 })]);
    expect(v.with(member('a', { status: 'suspect', since: 99 }))).toBe(v);
    expect(v.get('a')?.since).toBe(10);
  });

  it('within one incarnation allows exactly the moves up the precedence order', () => {
    for (const from of MEMBER_STATUSES) {
      for (const to of MEMBER_STATUSES) {
        const v = view([member('a', { status: from })]);
        const attempt = (): MembershipView => v.with(member('a', { status: to, since: 1 }));
        if (statusRank(to) >= statusRank(from)) {
          expect(attempt().get('a')?.status).toBe(to);
        } else {
          expect(attempt).toThrow(FailedPreconditionError);
        }
      }
    }
  });

  it('a suspected node refutes with a higher incarnation, not by going back to up', () => {
    const v = view([member('a', { status: 'suspect' })]);
    expect(() => v.with(member('a', { status: 'up' }))).toThrow(/back to up/);
    const refuted = v.with(member('a', { status: 'up', incarnation: 2_000, since: 2_000 }));
    expect(statuses(refuted)).toEqual({ a: 'up@2000' });
  });

  it('a node restarted on its data directory comes back with a new incarnation: down -> joining -> up', () => {
    let v = view([member('a', { status: 'down', since: 50 })]);
    v = v.with(member('a', { status: 'joining', incarnation: 2_000, since: 2_000 }));
    v = v.with(member('a', { status: 'up', incarnation: 2_000, since: 2_100 }));
    expect(statuses(v)).toEqual({ a: 'up@2000' });
  });

  it('rejects a stale incarnation, and an address or role change within an incarnation', () => {
    const v = view([member('a', { incarnation: 2_000 })]);
    expect(() => v.with(member('a', { incarnation: 1_000, status: 'left' }))).toThrow(FailedPreconditionError);
    expect(() => v.with(member('a', { incarnation: 2_000, status: 'down', address: 'elsewhere:1' }))).toThrow(InvalidArgumentError);
    expect(() => v.with(member('a', { incarnation: 2_000, status: 'down', role: 'worker' }))).toThrow(InvalidArgumentError);
    expect(v.with(member('a', { incarnation: 3_000, address: 'elsewhere:1', role: 'worker' })).get('a')?.address).toBe('elsewhere:1');
  });

  it('rejects a dropped incarnation but lets a restarted node rejoin', () => {
    const pruned = view([member('a', { status: 'left' })]).prune(10).view;
    expect(pruned.get('a')).toBeUndefined();
    expect(() => pruned.with(member('a', { status: 'up' }))).toThrow(FailedPreconditionError);
    expect(pruned.with(member('a', { status: 'joining', incarnation: 1_001 })).get('a')?.status).toBe('joining');
  });
});

describe('MembershipView.merge', () => {
  it('the higher incarnation wins whatever the statuses', () => {
    const old = view([member('a', { status: 'down', incarnation: 1 }), member('b', { status: 'up', incarnation: 1 })]);
    const young = view([member('a', { status: 'joining', incarnation: 2 }), member('b', { status: 'left', incarnation: 2 })]);
    expect(statuses(old.merge(young).view)).toEqual({ a: 'joining@2', b: 'left@2' });
    expect(statuses(young.merge(old).view)).toEqual({ a: 'joining@2', b: 'left@2' });
  });

  it('a down or left member is never resurrected by an older incarnation', () => {
    const dead = view([member('a', { status: 'down', incarnation: 2 }), member('b', { status: 'left', incarnation: 2 })]);
    const stale = view([member('a', { status: 'up', incarnation: 1 }), member('b', { status: 'up', incarnation: 1 })]);
    const merged = dead.merge(stale);
    expect(merged.view).toBe(dead);
    expect(merged.changes).toEqual([]);
    expect(statuses(stale.merge(dead).view)).toEqual({ a: 'down@2', b: 'left@2' });
  });

  it('for equal incarnations the higher status wins; up does not undo suspect', () => {
    for (const x of MEMBER_STATUSES) {
      for (const y of MEMBER_STATUSES) {
        const a = view([member('m', { status: x })]);
        const b = view([member('m', { status: y })]);
        const expected = statusRank(x) >= statusRank(y) ? x : y;
        expect(a.merge(b).view.get('m')?.status).toBe(expected);
      }
    }
    const suspected = view([member('m', { status: 'suspect' })]);
    expect(suspected.merge(view([member('m', { status: 'up', since: 999 })])).view).toBe(suspected);
  });

  it('for equal incarnation and status the earlier since wins, in both directions', () => {
    const early = view([member('m', { status: 'suspect', since: 10 })]);
    const late = view([member('m', { status: 'suspect', since: 20 })]);
    expect(early.merge(late).view).toBe(early);
    expect(late.merge(early).view.get('m')?.since).toBe(10);
    // A since change alone changes the view (new version) but is no status change.
    expect(late.merge(early).view.version).toBe(1);
    expect(late.merge(early).changes).toEqual([]);
  });

  it('breaks address ties deterministically', () => {
    const a = view([member('m', { address: 'a:1' })]);
    const b = view([member('m', { address: 'b:1' })]);
    expect(a.merge(b).view.get('m')?.address).toBe(b.merge(a).view.get('m')?.address);
    expect(compareMembers(member('m', { address: 'a:1' }), member('m', { address: 'b:1' }))).not.toBe(0);
  });

  it('version: max + 1 when the receiver changed, the receiver itself when not', () => {
    const a = view([member('a')], { version: 4 });
    const b = view([member('a'), member('b')], { version: 9 });
    const ab = a.merge(b);
    expect(ab.view.version).toBe(10);
    const ba = b.merge(a);
    expect(ba.view).toBe(b);
    expect(ba.changes).toEqual([]);
    const c = view([member('a', { status: 'suspect' })], { version: 2 });
    expect(b.merge(c).view.version).toBe(10);
  });

  it('reports changes relative to the receiver, sorted by id', () => {
    const mine = view([member('a'), member('b'), member('c'), member('d', { status: 'down', incarnation: 5 })]);
    const theirs = view(
      [member('a', { status: 'suspect' }), member('b'), member('c', { incarnation: 2_000 }), member('e', { status: 'joining' })],
      { tombstones: [{ id: 'd', incarnation: 5, at: 100 }] },
    );
    expect(mine.merge(theirs).changes).toEqual([
      { id: 'a', from: 'up', to: 'suspect', incarnation: 1_000 },
      { id: 'c', from: 'up', to: 'up', incarnation: 2_000 },
      { id: 'd', from: 'down', to: 'dropped', incarnation: 5 },
      { id: 'e', from: undefined, to: 'joining', incarnation: 1_000 },
    ]);
  });

  it('a tombstone keeps a pruned member out of views gossiped by nodes that have not pruned it', () => {
    const notPruned = view([member('a'), member('x', { status: 'down', since: 0 })]);
    const pruned = notPruned.prune(DOWN_DROP_MS).view;
    expect(pruned.get('x')).toBeUndefined();
    const again = pruned.merge(notPruned);
    expect(again.view).toBe(pruned);
    expect(again.changes).toEqual([]);
    // And the other way: the tombstone spreads and drops the member there too.
    const spread = notPruned.merge(pruned);
    expect(spread.view.get('x')).toBeUndefined();
    expect(spread.changes).toEqual([{ id: 'x', from: 'down', to: 'dropped', incarnation: 1_000 }]);
    expect(spread.view.tombstones.get('x')?.incarnation).toBe(1_000);
    // A restarted x (higher incarnation) gets through.
    const restarted = view([member('x', { status: 'joining', incarnation: 5_000 })]);
    expect(pruned.merge(restarted).view.get('x')?.status).toBe('joining');
  });

  it('merges tombstones by the higher incarnation, then the later time', () => {
    const a = view([], { tombstones: [{ id: 'x', incarnation: 5, at: 100 }, { id: 'y', incarnation: 1, at: 100 }] });
    const b = view([], { tombstones: [{ id: 'x', incarnation: 5, at: 200 }, { id: 'y', incarnation: 2, at: 50 }] });
    const expected = { x: { id: 'x', incarnation: 5, at: 200 }, y: { id: 'y', incarnation: 2, at: 50 } };
    expect(Object.fromEntries(a.merge(b).view.tombstones)).toEqual(expected);
    expect(Object.fromEntries(b.merge(a).view.tombstones)).toEqual(expected);
    expect(a.merge(b).changes).toEqual([]);
  });
});

/** Random views over a few ids, each built independently, as gossip from different nodes would be. */
function randomView(random: () => number): MembershipView {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
  const tombstones: Tombstone[] = [];
  const members: Member[] = [];
  for (const id of ids) {
    const roll = random();
    if (roll < 0.1) {
      tombstones.push({ id, incarnation: 1 + randomInt(random, 2), at: pick(random, [0, 100, 200]) });
    }
    if (roll < 0.25) continue;
    const incarnation = 1 + randomInt(random, 3);
    const t = tombstones.find((x) => x.id === id);
    if (t !== undefined && incarnation <= t.incarnation) continue;
    members.push({
      id,
      // Rarely a different address for the same incarnation, to exercise the tie-break.
      address: random() < 0.05 ? `${id}-other:1` : `${id}:1`,
      role: id < 'c' ? 'bootstrap' : id < 'e' ? 'control' : 'worker',
      status: pick(random, MEMBER_STATUSES),
      incarnation,
      since: pick(random, [0, 10, 20]),
    });
  }
  return MembershipView.of(members, { version: randomInt(random, 20), tombstones });
}

describe('MembershipView.merge properties (seeded random views)', () => {
  const random = seededRandom(42);
  const cases = Array.from({ length: 300 }, () => [randomView(random), randomView(random), randomView(random)] as const);

  it('is commutative in the resulting members and tombstones', () => {
    for (const [a, b] of cases) {
      const ab = a.merge(b).view;
      const ba = b.merge(a).view;
      expect(ab.list()).toEqual(ba.list());
      expect([...ab.tombstones.values()]).toEqual([...ba.tombstones.values()]);
    }
  });

  it('is idempotent: merging a view with itself or merging twice changes nothing', () => {
    for (const [a, b] of cases) {
      expect(a.merge(a)).toEqual({ view: a, changes: [] });
      const once = a.merge(b).view;
      const twice = once.merge(b);
      expect(twice.view).toBe(once);
      expect(twice.changes).toEqual([]);
      expect(once.merge(once).view).toBe(once);
    }
  });

  it('is associative in the resulting members', () => {
    for (const [a, b, c] of cases) {
      expect(a.merge(b).view.merge(c).view.list()).toEqual(a.merge(b.merge(c).view).view.list());
    }
  });

  it('never lets an entry lose to one it beats, and the version grows exactly when the view changed', () => {
    for (const [a, b] of cases) {
      const { view: merged, changes } = a.merge(b);
      for (const m of merged.list()) {
        for (const source of [a, b]) {
          const s = source.get(m.id);
          if (s !== undefined) expect(compareMembers(m, s)).toBeGreaterThanOrEqual(0);
        }
      }
      if (merged === a) expect(changes).toEqual([]);
      else expect(merged.version).toBe(Math.max(a.version, b.version) + 1);
      expect(changes).toEqual(diffViews(a, merged));
    }
  });

  it('gossip in any order converges every node to the same members', () => {
    for (let trial = 0; trial < 20; trial++) {
      const nodes = Array.from({ length: 5 }, () => randomView(random));
      const expected = nodes.reduce((acc, v) => acc.merge(v).view).list();
      // Random pairwise exchanges, then one full round so that everyone has heard from everyone.
      for (let step = 0; step < 30; step++) {
        const i = randomInt(random, nodes.length);
        const j = randomInt(random, nodes.length);
        nodes[i] = (nodes[i] as MembershipView).merge(nodes[j] as MembershipView).view;
      }
      for (const order of [shuffled(random, [0, 1, 2, 3, 4]), shuffled(random, [0, 1, 2, 3, 4])]) {
        for (const i of order) for (const j of order) nodes[i] = (nodes[i] as MembershipView).merge(nodes[j] as MembershipView).view;
      }
      for (const v of nodes) expect(v.list()).toEqual(expected);
    }
  });
});

describe('MembershipView.prune', () => {
  it('drops left members at once and down members after downDropMs (1 hour by default)', () => {
    expect(DOWN_DROP_MS).toBe(3_600_000);
    const v = view(
      [
        member('left', { status: 'left', since: 1_000 }),
        member('down', { status: 'down', since: 1_000 }),
        member('old-up', { status: 'up', since: -1e9 }),
        member('old-suspect', { status: 'suspect', since: -1e9 }),
        member('old-leaving', { status: 'leaving', since: -1e9 }),
      ],
      { version: 3 },
    );
    const early = v.prune(1_000 + DOWN_DROP_MS - 1);
    expect(early.view.version).toBe(4);
    expect(early.changes).toEqual([{ id: 'left', from: 'left', to: 'dropped', incarnation: 1_000 }]);
    expect(early.view.get('down')).toBeDefined();
    const late = early.view.prune(1_000 + DOWN_DROP_MS);
    expect(late.changes).toEqual([{ id: 'down', from: 'down', to: 'dropped', incarnation: 1_000 }]);
    expect(late.view.list().map((m) => m.id)).toEqual(['old-leaving', 'old-suspect', 'old-up']);
    expect(late.view.version).toBe(5);
  });

  it('returns the same view when nothing is due', () => {
    const v = view([member('a'), member('b', { status: 'down', since: 100 })]);
    expect(v.prune(200)).toEqual({ view: v, changes: [] });
    expect(v.prune(200, 50).changes).toHaveLength(1);
  });

  it('leaves a tombstone at now that expires after the TTL (downDropMs by default)', () => {
    const v = view([member('a', { status: 'left', incarnation: 7 })]);
    const pruned = v.prune(1_000, 500).view;
    expect(pruned.tombstones.get('a')).toEqual({ id: 'a', incarnation: 7, at: 1_000 });
    expect(pruned.prune(1_499, 500).view).toBe(pruned);
    const expired = pruned.prune(1_500, 500);
    expect(expired.view.tombstones.size).toBe(0);
    expect(expired.view.version).toBe(pruned.version + 1);
    expect(expired.changes).toEqual([]);
    // An explicit TTL outlives downDropMs.
    expect(pruned.prune(1_500, 500, 10_000).view.tombstones.size).toBe(1);
  });

  it('with a zero TTL keeps the tombstones it just made until the next prune', () => {
    const pruned = view([member('a', { status: 'left' })]).prune(1_000, 0, 0).view;
    expect(pruned.tombstones.size).toBe(1);
    expect(pruned.prune(1_000, 0, 0).view.tombstones.size).toBe(0);
  });

  it('rejects a non-finite time and negative durations', () => {
    const v = view([member('a')]);
    expect(() => v.prune(Number.NaN)).toThrow(RangeError);
    expect(() => v.prune(0, -1)).toThrow(RangeError);
    expect(() => v.prune(0, 0, -1)).toThrow(RangeError);
  });
});

describe('diffViews', () => {
  it('reports additions, drops, status changes and new incarnations, not since alone', () => {
    const before = view([member('a'), member('b'), member('c'), member('d')]);
    const after = view([
      member('a', { since: 50 }),
      member('b', { status: 'suspect' }),
      member('c', { incarnation: 2_000 }),
      member('e', { status: 'joining' }),
    ]);
    expect(diffViews(before, after)).toEqual([
      { id: 'b', from: 'up', to: 'suspect', incarnation: 1_000 },
      { id: 'c', from: 'up', to: 'up', incarnation: 2_000 },
      { id: 'd', from: 'up', to: 'dropped', incarnation: 1_000 },
      { id: 'e', from: undefined, to: 'joining', incarnation: 1_000 },
    ]);
    expect(diffViews(before, before)).toEqual([]);
  });
});

describe('DownVotes', () => {
  const threeVoters = view([member('v1'), member('v2'), member('v3', { role: 'bootstrap' }), member('w1', { role: 'worker' }), member('w2', { role: 'worker' })]);

  it('3 voters: 2 suspecting a member declares it down, 1 does not', () => {
    const votes = new DownVotes();
    votes.suspect('v1', 'v3', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    votes.suspect('v2', 'v3', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual(['v3']);
    votes.suspect('v1', 'w1', 1_000);
    votes.suspect('v2', 'w1', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual(['v3', 'w1']);
  });

  it("a worker's suspicion never counts", () => {
    const votes = new DownVotes();
    votes.suspect('v1', 'w2', 1_000);
    votes.suspect('w1', 'w2', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    votes.suspect('w1', 'v3', 1_000);
    votes.suspect('w2', 'v3', 1_000);
    votes.suspect('v1', 'v3', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    votes.suspect('v2', 'w2', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual(['w2']);
  });

  it("stale-incarnation votes don't count", () => {
    const votes = new DownVotes();
    votes.suspect('v1', 'v3', 999);
    votes.suspect('v2', 'v3', 999);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    // Nor do votes about an incarnation the view has not seen yet.
    votes.suspect('v1', 'v3', 1_001);
    votes.suspect('v2', 'v3', 1_001);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    // Re-voting at the current incarnation replaces the old vote.
    votes.suspect('v1', 'v3', 1_000);
    votes.suspect('v2', 'v3', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual(['v3']);
    // The member restarts: the votes no longer apply.
    expect(votes.verdicts(threeVoters.with(member('v3', { role: 'bootstrap', status: 'joining', incarnation: 2_000 })))).toEqual([]);
  });

  it("voters that are down don't count, and the majority is of the remaining voters", () => {
    const fourOneDown = view([member('a'), member('b'), member('c'), member('d', { status: 'down' }), member('t', { role: 'worker' })]);
    const votes = new DownVotes();
    votes.suspect('d', 't', 1_000);
    votes.suspect('a', 't', 1_000);
    expect(votes.verdicts(fourOneDown)).toEqual([]);
    votes.suspect('b', 't', 1_000);
    expect(votes.verdicts(fourOneDown)).toEqual(['t']);
  });

  it('a member cannot vote itself down, and members already down or left are not returned', () => {
    const votes = new DownVotes();
    votes.suspect('v3', 'v3', 1_000);
    votes.suspect('v1', 'v3', 1_000);
    expect(votes.verdicts(threeVoters)).toEqual([]);
    votes.suspect('v2', 'v3', 1_000);
    expect(votes.verdicts(threeVoters.with(member('v3', { role: 'bootstrap', status: 'down', since: 1 })))).toEqual([]);
  });

  it('a single voter declares members down alone; of two voters neither can declare the other down', () => {
    const single = view([member('boot', { role: 'bootstrap' }), member('w', { role: 'worker' })]);
    const votes = new DownVotes();
    votes.suspect('boot', 'w', 1_000);
    expect(votes.verdicts(single)).toEqual(['w']);
    const two = view([member('a'), member('b')]);
    votes.suspect('a', 'b', 1_000);
    expect(votes.verdicts(two)).toEqual([]);
  });

  it('5 voters need 3', () => {
    const five = view(['a', 'b', 'c', 'd', 'e'].map((id) => member(id)));
    const votes = new DownVotes();
    votes.suspect('a', 'e', 1_000);
    votes.suspect('b', 'e', 1_000);
    expect(votes.verdicts(five)).toEqual([]);
    votes.suspect('c', 'e', 1_000);
    expect(votes.verdicts(five)).toEqual(['e']);
  });

  it('clear and forget withdraw votes; list shows what is recorded, sorted', () => {
    const votes = new DownVotes();
    votes.suspect('v2', 'w1', 1_000);
    votes.suspect('v1', 'w1', 1_000);
    votes.suspect('v1', 'v3', 1_000);
    expect(votes.list()).toEqual([
      { voter: 'v1', member: 'v3', incarnation: 1_000 },
      { voter: 'v1', member: 'w1', incarnation: 1_000 },
      { voter: 'v2', member: 'w1', incarnation: 1_000 },
    ]);
    expect(votes.verdicts(threeVoters)).toEqual(['w1']);
    votes.clear('v2', 'w1');
    votes.clear('v2', 'w1');
    votes.clear('nobody', 'nothing');
    expect(votes.verdicts(threeVoters)).toEqual([]);
    votes.forget('v3');
    expect(votes.list()).toEqual([{ voter: 'v1', member: 'w1', incarnation: 1_000 }]);
  });

  it('rejects empty ids and bad incarnations', () => {
    const votes = new DownVotes();
    expect(() => votes.suspect('', 'a', 1)).toThrow(InvalidArgumentError);
    expect(() => votes.suspect('a', '', 1)).toThrow(InvalidArgumentError);
    expect(() => votes.suspect('a', 'b', -1)).toThrow(RangeError);
    expect(() => votes.suspect('a', 'b', 1.5)).toThrow(RangeError);
  });

  it('prune drops votes that cannot count and keeps the verdicts unchanged (seeded random votes)', () => {
    const random = seededRandom(9);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    let withVerdicts = 0;
    let dropped = 0;
    for (let trial = 0; trial < 200; trial++) {
      const v = randomView(random);
      const votes = new DownVotes();
      for (let i = 0; i < 20; i++) {
        const target = pick(random, ids);
        // Mostly at the member's current incarnation, so that verdicts happen.
        const current = v.get(target)?.incarnation;
        const incarnation = current !== undefined && random() < 0.7 ? current : 1 + randomInt(random, 3);
        votes.suspect(pick(random, ids), target, incarnation);
      }
      const before = votes.verdicts(v);
      const recorded = votes.list().length;
      votes.prune(v);
      dropped += recorded - votes.list().length;
      if (before.length > 0) withVerdicts++;
      expect(votes.verdicts(v)).toEqual(before);
      for (const vote of votes.list()) {
        const m = v.get(vote.member);
        expect(vote.voter).not.toBe(vote.member);
        if (m !== undefined) {
          expect(m.status === 'down' || m.status === 'left').toBe(false);
          expect(vote.incarnation).toBeGreaterThanOrEqual(m.incarnation);
        }
        const voter = v.get(vote.voter);
        if (voter !== undefined) expect(v.voters()).toContain(voter);
      }
    }
    // The property would hold trivially without verdicts or without anything to prune.
    expect(withVerdicts).toBeGreaterThan(20);
    expect(dropped).toBeGreaterThan(100);
  });

  it('prune keeps votes by and about ids the view does not know yet', () => {
    const votes = new DownVotes();
    votes.suspect('new-voter', 'v3', 1_000);
    votes.suspect('v1', 'unknown', 5);
    votes.suspect('w1', 'v3', 1_000);
    votes.prune(threeVoters);
    expect(votes.list()).toEqual([
      { voter: 'v1', member: 'unknown', incarnation: 5 },
      { voter: 'new-voter', member: 'v3', incarnation: 1_000 },
    ]);
  });
});
