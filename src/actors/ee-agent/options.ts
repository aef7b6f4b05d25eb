/**
 * Options of the execution-engine agent (one per worker), over EE_AGENT_DEFAULTS. The node turns its
 * flags into these (`--instance-id` becomes `instanceId`); tests use EE_AGENT_TEST_PRESET.
 */
import { DEFAULT_ENGINE_OPTIONS, TEST_ENGINE_OPTIONS, type EngineOptions } from '../../engines/engine.js';
import type { ActorRef } from '../../runtime/ref.js';
import { DISPATCHER_REF } from '../dispatcher/protocol.js';

export interface PumpOptions {
  /** Messages read per batch when the process's configuration names no `batch` (default 500). */
  batch: number;
  /** After a read that returned nothing, the first wait before reading again (default 5 ms)... */
  idleMinMs: number;
  /** ...doubling up to this (default 100 ms). */
  idleMaxMs: number;
  /** Deadline of each ask to a stream (default 10 s). */
  askTimeoutMs: number;
  /** After a stream call failed, the first wait before it is tried again, doubling up to `retryMaxMs`. */
  retryMinMs: number;
  retryMaxMs: number;
}

export interface EeAgentOptions {
  /** Processes the agent runs at once; a launch past them is rejected (default 8). */
  slots: number;
  /** Time between two heartbeats to the dispatcher (default 1 s); one also goes at once after any change. */
  heartbeatMs: number;
  /** The engine type the agent reports; the dispatcher places processes that ask for a type only on agents of it. */
  engineType: string;
  /** The worker's `--instance-id` (set when the provisioner started it), reported so its domain's terminations can evacuate it. */
  instanceId?: string;
  /** The node's role, reported in the heartbeat's properties (default 'worker'). */
  role: string;
  /** Reported as `hostname`; default os.hostname(). */
  hostname?: string;
  /** Where heartbeats go. */
  dispatcher: ActorRef;
  /** How the engines are run (start grace, deadlines, stop grace, log bounds). */
  engine: Partial<EngineOptions>;
  pump: PumpOptions;
  /** Most log lines one `logs` ask answers (the newest of them). */
  maxLogLines: number;
}

export const EE_AGENT_DEFAULTS: EeAgentOptions = {
  slots: 8,
  heartbeatMs: 1_000,
  engineType: 'default',
  role: 'worker',
  dispatcher: DISPATCHER_REF,
  engine: DEFAULT_ENGINE_OPTIONS,
  pump: { batch: 500, idleMinMs: 5, idleMaxMs: 100, askTimeoutMs: 10_000, retryMinMs: 50, retryMaxMs: 2_000 },
  maxLogLines: 10_000,
};

/** Short intervals for tests (engines keep their real-time deadlines, long enough for a cold start). */
export const EE_AGENT_TEST_PRESET: EeAgentOptions = {
  ...EE_AGENT_DEFAULTS,
  heartbeatMs: 200,
  engine: TEST_ENGINE_OPTIONS,
  pump: { batch: 500, idleMinMs: 5, idleMaxMs: 100, askTimeoutMs: 5_000, retryMinMs: 10, retryMaxMs: 200 },
};

/** The defaults under `options`, the pump's and engine's fields each merged on their own. */
export function resolveEeAgentOptions(options: Partial<EeAgentOptions> = {}): EeAgentOptions {
  return {
    ...EE_AGENT_DEFAULTS,
    ...options,
    engine: { ...EE_AGENT_DEFAULTS.engine, ...options.engine },
    pump: { ...EE_AGENT_DEFAULTS.pump, ...options.pump },
  };
}
