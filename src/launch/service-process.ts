/**
 * The processes behind a plan's services on this machine: starting a `cei node` or a command
 * detached (its own process group, stdout and stderr appended to a log file, so it outlives the
 * `cei launch` that started it), reading a node's ready line, telling whether a recorded pid is still
 * that service, and stopping one (SIGTERM to its group, a deadline, then SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandService, NodeService } from '../plans/plan.js';
import { signalInstance } from '../iaas/local-process.js';
import { NODE_V8_FLAGS } from '../node-flags.js';

/** dist/cli.js (or src/cli.ts under tsx): the `cei` a node service runs. */
export const CEI_CLI = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli.ts' : '../cli.js', import.meta.url));

const HAS_PROC = existsSync('/proc/self/cmdline');

/** A service process just started, watched until it is ready or gone. */
export interface Started {
  pid: number;
  child: ChildProcess;
  /** Set once the process has exited: its code or signal. */
  exit(): string | undefined;
  /** Stop watching, so that this process may exit while the service runs on. */
  release(): void;
}

function startDetached(command: string, args: string[], opts: { log: string; cwd?: string; env: Record<string, string> }): Started {
  mkdirSync(dirname(opts.log), { recursive: true });
  const fd = openSync(opts.log, 'a');
  let exited: string | undefined;
  try {
    const child = spawn(command, args, { detached: true, cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', fd, fd] });
    child.on('exit', (code, signal) => (exited = signal ?? `exit code ${code}`));
    child.on('error', (err) => (exited = err.message));
    if (child.pid === undefined) throw new Error(`cannot start ${command}`);
    return { pid: child.pid, child, exit: () => exited, release: () => child.unref() };
  } finally {
    closeSync(fd);
  }
}

/** The `cei node` command line of a resolved node service. */
export function nodeArgs(s: NodeService): string[] {
  const args = [CEI_CLI, 'node', '--role', s.role, '--listen', s.listen, '--data', s.data_dir];
  if (s.join.length > 0) args.push('--join', s.join.join(','));
  if (s.replicas !== undefined) args.push('--replicas', String(s.replicas));
  if (s.slots !== undefined) args.push('--slots', String(s.slots));
  if (s.engine_type !== undefined) args.push('--engine-type', s.engine_type);
  return [...args, ...s.args];
}

export function startNodeProcess(s: NodeService, log: string): Started {
  mkdirSync(s.data_dir, { recursive: true });
  return startDetached(process.execPath, [...NODE_V8_FLAGS, ...nodeArgs(s)], { log, env: s.env });
}

export function startCommandProcess(s: CommandService, log: string): Started {
  return startDetached('sh', ['-c', s.run], { log, cwd: s.cwd, env: s.env });
}

/**
 * True while `pid` is a live process and, when `marker` is given and /proc exists, its command line
 * contains it (a node's data directory): a pid recycled by an unrelated process is not the service.
 */
export function isServiceProcess(pid: number | undefined, marker?: string): boolean {
  if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 0) return false;
  if (HAS_PROC) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return false;
    }
    if (cmdline === '') return false; // a zombie
    return marker === undefined || cmdline.split('\0').includes(marker);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True while a process of the group `pgid` led runs. A zombie (exited, not yet reaped, which may
 * take long when the launcher that started it has exited) does not run, though it keeps the group
 * alive for kill(2); with /proc it is told apart, without /proc it counts.
 */
export function groupRuns(pgid: number): boolean {
  if (!Number.isSafeInteger(pgid) || pgid <= 0) return false;
  if (!HAS_PROC) {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ESRCH';
    }
  }
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Gone meanwhile.
    }
    // After "pid (comm) ": state, ppid, pgrp, ...; comm may hold spaces and parentheses.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (pgrp === String(pgid) && state !== 'Z') return true;
  }
  return false;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGTERM to the service's group, then SIGKILL if anything of it is left after `graceMs`.
 * Resolves with how it ended: 'gone' (was not running), 'terminated' or 'killed'.
 */
export async function stopProcess(pid: number, marker: string | undefined, graceMs: number, pollMs: number): Promise<'gone' | 'terminated' | 'killed'> {
  const alive = () => isServiceProcess(pid, marker) || groupRuns(pid);
  if (!alive()) return 'gone';
  signalInstance(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive()) return 'terminated';
    await pause(pollMs);
  }
  signalInstance(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2_000;
  while (alive() && Date.now() < killDeadline) await pause(pollMs);
  return 'killed';
}
