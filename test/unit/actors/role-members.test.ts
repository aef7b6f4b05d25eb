/** The membership feed roles subscribe to: a listener hears each new snapshot once, within the interval. */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { MembersFeed } from '../../../src/actors/role-members.js';
import type { RoleMember } from '../../../src/actors/role-env.js';

describe('MembersFeed', () => {
  it('calls listeners once per new snapshot, only while they listen, and survives a listener that throws', () => {
    const clock = new FakeClock();
    let snapshot: { members: RoleMember[] } = { members: [] };
    const feed = new MembersFeed(() => snapshot, () => snapshot.members, clock, silentLogger, 50);
    const heard: string[][] = [];
    feed.watch(() => {
      throw new Error('bad listener');
    });
    const unwatch = feed.watch((members) => heard.push(members.map((m) => `${m.id}:${m.status}`)));
    clock.advance(200);
    expect(heard).toEqual([]);
    snapshot = { members: [{ id: 'w1', address: 'a:1', role: 'worker', status: 'down' }] };
    clock.advance(49);
    expect(heard).toEqual([]);
    clock.advance(1);
    expect(heard).toEqual([['w1:down']]);
    clock.advance(500);
    expect(heard).toHaveLength(1);
    unwatch();
    snapshot = { members: [] };
    clock.advance(100);
    expect(heard).toHaveLength(1);
    feed.stop();
    expect(clock.timerCount).toBe(0);
  });
});
