/**
 * How the dispatcher runs on a node: the pure core's options (./core.ts) plus the shell's own, in
 * one typed object with documented defaults and a test preset.
 */
import { DISPATCHER_DEFAULTS, DISPATCHER_TEST_PRESET, type DispatcherOptions } from './core.js';

export interface DispatcherRoleOptions extends DispatcherOptions {
  /** Bound of each ask the dispatcher makes of an EPU domain (reconfigure, subscribe). */
  askTimeoutMs: number;
  /** A need no domain took (no such domain yet, a refusal, a timeout) is tried again this often. */
  capacityRetryMs: number;
}

export const DISPATCHER_ROLE_DEFAULTS: DispatcherRoleOptions = {
  ...DISPATCHER_DEFAULTS,
  askTimeoutMs: 10_000,
  capacityRetryMs: 30_000,
};

/** Short intervals for tests. */
export const DISPATCHER_ROLE_TEST_PRESET: DispatcherRoleOptions = {
  ...DISPATCHER_TEST_PRESET,
  askTimeoutMs: 3_000,
  capacityRetryMs: 1_000,
};
