/**
 * Options of the launcher (launch, status, teardown, repair): one typed object with documented
 * defaults, and a test preset with short waits. src/cli-launch.ts only turns flags into these.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface LaunchOptions {
  /** The user's cei directory: run records (`runs.db/`) and run directories (`runs/<name>/`). Default `~/.cei`. */
  home: string;
  /** Deadline of one gRPC health check or API call made to verify a node (ms). Default 2000. */
  checkDeadlineMs: number;
  /** Pause between two readiness attempts of a service (ms). Default 250. */
  pollMs: number;
  /** How long one run of a `ready` or `terminate` command may take before it is killed (ms). Default 10000. */
  commandTimeoutMs: number;
  /** Teardown: how long a service has after SIGTERM before SIGKILL (ms). Default 10000. */
  stopGraceMs: number;
  /** Teardown: how long the EPU domains may take to terminate their instances (ms). Default 60000. */
  drainTimeoutMs: number;
  /** Applying the system objects: how long a domain still being removed by an earlier run is waited for (ms). Default 30000. */
  applyTimeoutMs: number;
  /** Repair: restarts of one service before it is given up. Default 2. */
  repairRetries: number;
}

export const LAUNCH_DEFAULTS: LaunchOptions = {
  home: join(homedir(), '.cei'),
  checkDeadlineMs: 2_000,
  pollMs: 250,
  commandTimeoutMs: 10_000,
  stopGraceMs: 10_000,
  drainTimeoutMs: 60_000,
  applyTimeoutMs: 30_000,
  repairRetries: 2,
};

export function launchOptions(overrides: Partial<LaunchOptions> = {}): LaunchOptions {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return { ...LAUNCH_DEFAULTS, ...defined };
}

/** Where a run's files live: data directories, logs. */
export function runDir(home: string, run: string): string {
  return join(home, 'runs', run);
}
