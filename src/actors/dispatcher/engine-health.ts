/**
 * How the dispatcher judges its execution engine agents: by the time since it last heard a heartbeat
 * from each, on the time the caller passes (no clock here).
 *
 *   OK       heard within heartbeatWarningMs; takes new work
 *   WARNING  silent past heartbeatWarningMs; keeps its processes but takes no new work; back to OK on
 *            its next heartbeat
 *   MISSING  silent past heartbeatMissingMs; the core forgets the agent and places its processes again
 *            (or fails them, by restart mode). A later heartbeat registers it as a new agent, whose
 *            reports of the old rounds only draw terminations.
 *
 * An agent whose worker its EPU domain terminated is MISSING at once (the core's `evacuate`): waiting
 * for its heartbeats to stop would leave its processes on a dead VM for heartbeatMissingMs.
 */

export interface EngineHealthOptions {
  heartbeatWarningMs: number;
  heartbeatMissingMs: number;
}

export const ENGINE_HEALTH_DEFAULTS: EngineHealthOptions = { heartbeatWarningMs: 3_000, heartbeatMissingMs: 6_000 };

export type AgentHealth = 'OK' | 'WARNING' | 'MISSING';

export function judgeAgent(lastHeardAt: number, now: number, opts: EngineHealthOptions): AgentHealth {
  const silent = now - lastHeardAt;
  if (silent > opts.heartbeatMissingMs) return 'MISSING';
  if (silent > opts.heartbeatWarningMs) return 'WARNING';
  return 'OK';
}

/**
 * When the agent's health next changes if it stays silent (the first bound still ahead of `now`);
 * undefined once it is past both. Judged from the silence alone, so a tick that was late (the agent
 * still OK in the state though past the warning bound) does not hide the missing bound.
 */
export function nextHealthChangeAt(lastHeardAt: number, now: number, opts: EngineHealthOptions): number | undefined {
  // Judged with `>`: the change happens one millisecond past the bound.
  for (const bound of [opts.heartbeatWarningMs, opts.heartbeatMissingMs]) {
    const at = lastHeardAt + bound + 1;
    if (at > now) return at;
  }
  return undefined;
}

export interface HealthSweep {
  /** Agents that just turned WARNING. */
  warned: string[];
  /** Agents now MISSING. */
  missing: string[];
}

/** Judges every agent; the caller applies the verdicts. */
export function sweep(agents: ReadonlyArray<{ agentId: string; lastHeardAt: number; health: AgentHealth }>, now: number, opts: EngineHealthOptions): HealthSweep {
  const out: HealthSweep = { warned: [], missing: [] };
  for (const a of agents) {
    const verdict = judgeAgent(a.lastHeardAt, now, opts);
    if (verdict === 'MISSING') out.missing.push(a.agentId);
    else if (verdict === 'WARNING' && a.health === 'OK') out.warned.push(a.agentId);
  }
  return out;
}
