/**
 * The lifecycle of a dispatched process, its queueing and restart modes, and the pure rules that read
 * them. A process has a state and a `round`: the number of times it went back to be placed again.
 * Within a round the state only moves forward (by `rank`); going back means a new round, so a report
 * an agent made about an older round can be recognised and ignored.
 *
 *   UNSCHEDULED           known but never asked to run (kept for the protocol; schedule skips it)
 *   UNSCHEDULED_PENDING   restartable, from before a system restart; held until boot ends
 *   REQUESTED             asked to run, not yet looked at by matching
 *   DIED_REQUESTED        was placed, its run ended abnormally (or its agent vanished); to be placed again
 *   WAITING               no slot fits it now; queued until one does
 *   ASSIGNED              matched to an agent; the launch is on its way
 *   PENDING               the agent reported it starting
 *   RUNNING               the agent reported it running
 *   TERMINATING           termination asked of its agent
 *   TERMINATED            stopped on request (or while not placed)
 *   EXITED                ended by itself with code 0, not restarted
 *   FAILED                ended abnormally (or its agent vanished), not restarted
 *   REJECTED              could not be placed and its queueing mode forbids waiting
 *
 *   round n:   REQUESTED | DIED_REQUESTED -> WAITING -> ASSIGNED -> PENDING -> RUNNING -> TERMINATING -> TERMINATED
 *              REQUESTED | DIED_REQUESTED | WAITING -> REJECTED | TERMINATED
 *              ASSIGNED | PENDING | RUNNING -> EXITED | FAILED
 *   round n+1: ASSIGNED | PENDING | RUNNING -> DIED_REQUESTED (restarted by its restart mode)
 *              any placed or final state -> REQUESTED (restart)
 */

export const PROCESS_STATES = [
  'UNSCHEDULED',
  'UNSCHEDULED_PENDING',
  'REQUESTED',
  'DIED_REQUESTED',
  'WAITING',
  'ASSIGNED',
  'PENDING',
  'RUNNING',
  'TERMINATING',
  'TERMINATED',
  'EXITED',
  'FAILED',
  'REJECTED',
] as const;

export type ProcessState = (typeof PROCESS_STATES)[number];

/** Whether a process that cannot be placed now may wait for a slot, for a first start and a restart. */
export const QUEUEING_MODES = ['NEVER', 'ALWAYS', 'START_ONLY', 'RESTART_ONLY'] as const;
export type QueueingMode = (typeof QUEUEING_MODES)[number];

/** Whether a process whose run ended (or whose agent vanished) is placed again in the next round. */
export const RESTART_MODES = ['NEVER', 'ALWAYS', 'ABNORMAL'] as const;
export type RestartMode = (typeof RESTART_MODES)[number];

export const DEFAULT_QUEUEING_MODE: QueueingMode = 'ALWAYS';
export const DEFAULT_RESTART_MODE: RestartMode = 'ABNORMAL';

/**
 * The states an agent may report of a process it holds. REJECTED: the agent had no free slot for
 * the launch (the dispatcher's view of its slots was behind), so the process never started there.
 */
export const AGENT_STATES = ['PENDING', 'RUNNING', 'TERMINATING', 'TERMINATED', 'EXITED', 'FAILED', 'REJECTED'] as const;
export type AgentProcessState = (typeof AGENT_STATES)[number];

const RANK: Readonly<Record<ProcessState, number>> = Object.fromEntries(PROCESS_STATES.map((s, i) => [s, i])) as Record<ProcessState, number>;

/** The order of states within one round (the original numbered them 100, 200 ...). */
export function rank(state: ProcessState): number {
  return RANK[state];
}

export function isProcessState(value: unknown): value is ProcessState {
  return typeof value === 'string' && (PROCESS_STATES as readonly string[]).includes(value);
}

export function isAgentState(value: unknown): value is AgentProcessState {
  return typeof value === 'string' && (AGENT_STATES as readonly string[]).includes(value);
}

/** At rest: nothing more happens to the process unless it is scheduled or restarted again. */
export function isFinal(state: ProcessState): boolean {
  return state === 'TERMINATED' || state === 'EXITED' || state === 'FAILED' || state === 'REJECTED';
}

/** Waiting in the queue for matching. */
export function isQueued(state: ProcessState): boolean {
  return state === 'REQUESTED' || state === 'DIED_REQUESTED' || state === 'WAITING';
}

/** Holding (or about to hold) a slot on an agent. */
export function isPlaced(state: ProcessState): boolean {
  return state === 'ASSIGNED' || state === 'PENDING' || state === 'RUNNING' || state === 'TERMINATING';
}

/** An agent's report that the process is no longer running there. */
export function isEndReport(state: AgentProcessState): boolean {
  return state === 'TERMINATED' || state === 'EXITED' || state === 'FAILED' || state === 'REJECTED';
}

/**
 * Whether a run that ended in `end` is placed again. ABNORMAL restarts anything but a clean exit; an
 * agent that vanished counts as FAILED. A process whose configuration says
 * `process.omit_from_system_restart` is not brought back after a system restart, as in the original.
 */
export function shouldRestart(mode: RestartMode, end: 'EXITED' | 'FAILED' | 'TERMINATED', opts: { systemRestart?: boolean; configuration?: Record<string, unknown> } = {}): boolean {
  if (opts.systemRestart && omittedFromSystemRestart(opts.configuration)) return false;
  if (mode === 'ALWAYS') return true;
  if (mode === 'ABNORMAL') return end !== 'EXITED';
  return false;
}

function omittedFromSystemRestart(configuration: Record<string, unknown> | undefined): boolean {
  const block = configuration?.process;
  return typeof block === 'object' && block !== null && (block as Record<string, unknown>).omit_from_system_restart === true;
}

/**
 * What becomes of a process no slot fits: WAITING or REJECTED by its queueing mode. `starts` counts
 * the times it reached RUNNING; a process that never did is on its first start, as in the original
 * (a run that died before RUNNING does not make the next one a restart).
 */
export function queueVerdict(mode: QueueingMode, starts: number): 'WAITING' | 'REJECTED' {
  switch (mode) {
    case 'NEVER':
      return 'REJECTED';
    case 'ALWAYS':
      return 'WAITING';
    case 'START_ONLY':
      return starts === 0 ? 'WAITING' : 'REJECTED';
    case 'RESTART_ONLY':
      return starts === 0 ? 'REJECTED' : 'WAITING';
  }
}
