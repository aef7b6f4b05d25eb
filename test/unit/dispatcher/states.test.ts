import { describe, expect, it } from 'vitest';
import { PROCESS_STATES, isFinal, isPlaced, isQueued, queueVerdict, rank, shouldRestart } from '../../../src/actors/dispatcher/states.js';

describe('process states', () => {
  it('orders states as the original numbered them: queued before placed before final', () => {
    expect(rank('REQUESTED')).toBeLessThan(rank('WAITING'));
    expect(rank('WAITING')).toBeLessThan(rank('ASSIGNED'));
    expect(rank('PENDING')).toBeLessThan(rank('RUNNING'));
    expect(rank('RUNNING')).toBeLessThan(rank('TERMINATING'));
    expect(rank('TERMINATING')).toBeLessThan(rank('TERMINATED'));
  });

  it('puts every state in at most one of queued, placed, final', () => {
    for (const s of PROCESS_STATES) {
      expect([isQueued(s), isPlaced(s), isFinal(s)].filter(Boolean).length).toBeLessThanOrEqual(1);
    }
    expect(PROCESS_STATES.filter(isFinal)).toEqual(['TERMINATED', 'EXITED', 'FAILED', 'REJECTED']);
  });

  it('queueing modes decide WAITING or REJECTED for a first start and a restart', () => {
    expect([queueVerdict('ALWAYS', 0), queueVerdict('ALWAYS', 3)]).toEqual(['WAITING', 'WAITING']);
    expect([queueVerdict('NEVER', 0), queueVerdict('NEVER', 3)]).toEqual(['REJECTED', 'REJECTED']);
    expect([queueVerdict('START_ONLY', 0), queueVerdict('START_ONLY', 1)]).toEqual(['WAITING', 'REJECTED']);
    expect([queueVerdict('RESTART_ONLY', 0), queueVerdict('RESTART_ONLY', 1)]).toEqual(['REJECTED', 'WAITING']);
  });

  it('restart modes decide whether an ended run comes back', () => {
    expect(shouldRestart('ABNORMAL', 'EXITED')).toBe(false);
    expect(shouldRestart('ABNORMAL', 'FAILED')).toBe(true);
    expect(shouldRestart('ALWAYS', 'EXITED')).toBe(true);
    expect(shouldRestart('NEVER', 'FAILED')).toBe(false);
  });

  it('a process may opt out of coming back after a system restart', () => {
    const configuration = { process: { omit_from_system_restart: true } };
    expect(shouldRestart('ALWAYS', 'FAILED', { systemRestart: true, configuration })).toBe(false);
    expect(shouldRestart('ALWAYS', 'FAILED', { systemRestart: false, configuration })).toBe(true);
  });
});
