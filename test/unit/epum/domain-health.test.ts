/** The health rules of a domain as a pure function: a table of instances, membership, heartbeats and time. */
import { describe, expect, it } from 'vitest';
import { isZombieBeat, judge, type HealthInputs } from '../../../src/actors/epum/domain-health.js';
import type { DomainInstance } from '../../../src/actors/epum/domain-state.js';
import { HealthConfSchema } from '../../../src/actors/epum/protocol.js';
import type { RoleMember } from '../../../src/actors/role-env.js';

const T0 = 1_000_000;
const conf = HealthConfSchema.parse({ boot_timeout: 60, missing_timeout: 5, really_missing_timeout: 5, zombie_seconds: 10 });

function instance(fields: Partial<DomainInstance> = {}): DomainInstance {
  return {
    id: 'i-0',
    launch_id: 'l',
    state: 'RUNNING',
    reported: true,
    site: 's',
    deployable_type: 'dt',
    vars: {},
    node_id: 'w1',
    launch_time: T0,
    state_changed_at: T0,
    running_since: T0,
    health: 'OK',
    health_since: T0,
    ...fields,
  };
}

function inputs(now: number, member?: RoleMember['status'], heardAt?: number, overrides: Partial<HealthInputs> = {}): HealthInputs {
  return {
    now,
    conf,
    members: new Map(member ? [['w1', member]] : []),
    heardAt: () => heardAt,
    ...overrides,
  };
}

describe('judge', () => {
  const cases: Array<[string, DomainInstance, HealthInputs, ReturnType<typeof judge>]> = [
    ['a RUNNING worker up and heard is left OK', instance(), inputs(T0 + 20_000, 'up', T0 + 19_000), undefined],
    ['a worker declared down is MISSING at once', instance(), inputs(T0 + 1, 'down', T0), { health: 'MISSING', reason: 'its node w1 is down' }],
    ['a worker that left is MISSING', instance(), inputs(T0 + 1, 'left'), { health: 'MISSING', reason: 'its node w1 is left' }],
    ['a suspected worker is OUT_OF_CONTACT', instance(), inputs(T0 + 1, 'suspect'), { health: 'OUT_OF_CONTACT', reason: 'its node w1 is suspect' }],
    ['silence past missing_timeout is OUT_OF_CONTACT', instance(), inputs(T0 + 12_000, 'up', T0 + 6_000), { health: 'OUT_OF_CONTACT', reason: 'no heartbeat for 6 s' }],
    ['silence of one never heard from counts for nothing', instance(), inputs(T0 + 120_000, 'up', undefined), undefined],
    ['out of contact for really_missing_timeout more is MISSING', instance({ health: 'OUT_OF_CONTACT', health_since: T0 + 6_000 }), inputs(T0 + 12_000, 'up', T0), {
      health: 'MISSING',
      reason: 'no heartbeat for 12 s; out of contact for more than 5 s',
    }],
    ['out of contact, not yet long enough, stays', instance({ health: 'OUT_OF_CONTACT', health_since: T0 + 6_000 }), inputs(T0 + 10_000, 'up', T0), undefined],
    ['heard again: back to OK', instance({ health: 'OUT_OF_CONTACT', health_since: T0 }), inputs(T0 + 10_000, 'up', T0 + 9_500), { health: 'OK' }],
    ['MISSING stays, even heard again', instance({ health: 'MISSING' }), inputs(T0 + 10_000, 'up', T0 + 9_999), undefined],
    ['pending past boot_timeout is MISSING', instance({ state: 'PENDING', node_id: undefined }), inputs(T0 + 61_000), { health: 'MISSING', reason: 'not RUNNING 60 s after its launch' }],
    ['pending within boot_timeout is left', instance({ state: 'REQUESTING', node_id: undefined }), inputs(T0 + 59_000), undefined],
    ['RUNNING_FAILED is PROCESS_ERROR', instance({ state: 'RUNNING_FAILED', state_detail: 'not ready' }), inputs(T0 + 1), { health: 'PROCESS_ERROR', reason: 'not ready' }],
    ['a terminating instance is not judged', instance({ terminate_asked_at: T0 }), inputs(T0 + 1, 'down'), undefined],
    ['a final instance is not judged', instance({ state: 'TERMINATED' }), inputs(T0 + 1, 'down'), undefined],
    ['monitor_health false judges nothing', instance(), { ...inputs(T0 + 1, 'down'), conf: { ...conf, monitor_health: false } }, undefined],
  ];
  it.each(cases)('%s', (_what, i, h, expected) => {
    expect(judge(i, h)).toEqual(expected);
  });
});

describe('isZombieBeat', () => {
  it('is a heartbeat zombie_seconds after the termination was asked for, or after the instance was reported gone', () => {
    expect(isZombieBeat(instance(), T0 + 60_000, conf)).toBe(false);
    expect(isZombieBeat(instance({ terminate_asked_at: T0 }), T0 + 9_000, conf)).toBe(false);
    expect(isZombieBeat(instance({ terminate_asked_at: T0 }), T0 + 11_000, conf)).toBe(true);
    expect(isZombieBeat(instance({ state: 'TERMINATED', state_changed_at: T0 + 5_000 }), T0 + 11_000, conf)).toBe(false);
    expect(isZombieBeat(instance({ state: 'TERMINATED', state_changed_at: T0 + 5_000 }), T0 + 16_000, conf)).toBe(true);
    expect(isZombieBeat(instance({ state: 'TERMINATED' }), T0 + 60_000, { ...conf, monitor_health: false })).toBe(false);
  });
});
