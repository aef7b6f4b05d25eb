import { describe, expect, it } from 'vitest';
import { judgeAgent, nextHealthChangeAt, sweep } from '../../../src/actors/dispatcher/engine-health.js';

const opts = { heartbeatWarningMs: 3_000, heartbeatMissingMs: 6_000 };

describe('engine health', () => {
  it('OK, then WARNING past the warning bound, then MISSING past the missing bound', () => {
    expect(judgeAgent(1_000, 4_000, opts)).toBe('OK');
    expect(judgeAgent(1_000, 4_001, opts)).toBe('WARNING');
    expect(judgeAgent(1_000, 7_000, opts)).toBe('WARNING');
    expect(judgeAgent(1_000, 7_001, opts)).toBe('MISSING');
  });

  it('tells when the next change is due', () => {
    expect(nextHealthChangeAt(1_000, 2_000, opts)).toBe(4_001);
    expect(nextHealthChangeAt(1_000, 4_001, opts)).toBe(7_001);
    expect(nextHealthChangeAt(1_000, 7_001, opts)).toBeUndefined();
  });

  it('a sweep reports new warnings once and every missing agent', () => {
    const agents = [
      { agentId: 'fresh', lastHeardAt: 9_000, health: 'OK' as const },
      { agentId: 'quiet', lastHeardAt: 5_000, health: 'OK' as const },
      { agentId: 'warned', lastHeardAt: 5_000, health: 'WARNING' as const },
      { agentId: 'gone', lastHeardAt: 1_000, health: 'WARNING' as const },
    ];
    expect(sweep(agents, 9_000, opts)).toEqual({ warned: ['quiet'], missing: ['gone'] });
  });
});
