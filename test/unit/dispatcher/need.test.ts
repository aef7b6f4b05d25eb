import { describe, expect, it } from 'vitest';
import { CAPACITY_DEFAULTS, computeNeed, domainOf, pickRetirees, planNeed, type WorkerView } from '../../../src/actors/dispatcher/need.js';

const cap = { ...CAPACITY_DEFAULTS, slotsPerWorker: 4 };
const w = (nodeId: string, firstHeardAt: number, busy = false): WorkerView => ({ nodeId, firstHeardAt, busy });

describe('need', () => {
  it('grows with the queue: ceil((queued + running) / slots) + spare', () => {
    expect(computeNeed({ queued: 0, running: 0, workers: [], capacity: cap })).toBe(0);
    expect(computeNeed({ queued: 1, running: 0, workers: [], capacity: cap })).toBe(1);
    expect(computeNeed({ queued: 3, running: 2, workers: [], capacity: cap })).toBe(2);
    expect(computeNeed({ queued: 3, running: 2, workers: [], capacity: { ...cap, spareWorkers: 1 } })).toBe(3);
  });

  it('is bounded by minWorkers and maxWorkers', () => {
    expect(computeNeed({ queued: 0, running: 0, workers: [], capacity: { ...cap, minWorkers: 2 } })).toBe(2);
    expect(computeNeed({ queued: 40, running: 0, workers: [], capacity: { ...cap, maxWorkers: 3 } })).toBe(3);
  });

  it('never asks for fewer workers than are busy', () => {
    const workers = [w('a', 1, true), w('b', 2, true), w('c', 3, true)];
    expect(computeNeed({ queued: 0, running: 3, workers, capacity: cap })).toBe(3);
  });

  it('shrinking retires idle workers, newest first, never a busy one', () => {
    const workers = [w('old', 1), w('busy', 5, true), w('mid', 2), w('new', 3)];
    const plan = planNeed({ queued: 0, running: 1, workers, capacity: cap, previous: 4 });
    expect(plan.preserveN).toBe(1);
    expect(plan.retire).toEqual(['new', 'mid', 'old']);
    expect(pickRetirees(workers, 2)).toEqual(['new', 'mid']);
  });

  it('names no retirees while growing or while the domain has not reached the last ask', () => {
    expect(planNeed({ queued: 8, running: 0, workers: [w('a', 1)], capacity: cap, previous: 1 })).toEqual({ preserveN: 2, retire: [] });
    expect(planNeed({ queued: 0, running: 0, workers: [], capacity: cap, previous: 3 })).toEqual({ preserveN: 0, retire: [] });
  });

  it('while there is work, drops only by the workers it names (the domain would pick its newest, maybe about to be busy)', () => {
    // Asked for 3; one worker heartbeated so far, busy; 3 processes of 4 slots need 1: the other two
    // instances are unknown, perhaps about to take work, so the need stays until they are known.
    expect(planNeed({ queued: 1, running: 2, workers: [w('a', 1, true)], capacity: cap, previous: 3 })).toEqual({ preserveN: 3, retire: [] });
    // One more known and idle: it is named, the need drops by one.
    expect(planNeed({ queued: 1, running: 2, workers: [w('a', 1, true), w('b', 2)], capacity: cap, previous: 3 })).toEqual({ preserveN: 2, retire: ['b'] });
    expect(planNeed({ queued: 0, running: 2, workers: [w('a', 1, true), w('b', 2), w('c', 3)], capacity: cap, previous: 2 })).toEqual({ preserveN: 1, retire: ['c'] });
  });

  it('names the domain after the engine type', () => {
    expect(domainOf('small')).toBe('pd_small');
  });
});
