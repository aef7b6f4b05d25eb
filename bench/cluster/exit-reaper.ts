import type { ChildProcess } from 'node:child_process';

/**
 * Child processes of this bench process that have not exited. If the bench process ends without
 * stopping them (an uncaught error, SIGINT through index.ts' process.exit), they are killed on the
 * way out: a stray node keeps a core busy and skews every later measurement on the machine. SIGCONT
 * first, for a process that a fail-over round SIGSTOPped (SIGKILL ends a stopped process too).
 */
const running = new Set<ChildProcess>();
let hooked = false;

/** Kills `proc` when this process exits, unless it exited first. */
export function reapOnExit(proc: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const p of running) {
        p.kill('SIGCONT');
        p.kill('SIGKILL');
      }
    });
  }
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
}
