/**
 * What the local driver knows how to do with one detached instance process on this machine: tell
 * whether a recorded pid is still that instance (and not a recycled pid), signal its process group,
 * and read what it wrote to its log. All synchronous: they are a few small reads and a signal, and
 * keeping them synchronous makes each state change of an instance one uninterrupted step.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

/** Linux exposes each process's argv; elsewhere only liveness can be checked (see isInstanceProcess). */
const HAS_PROC = existsSync('/proc/self/cmdline');

/**
 * True while `pid` is a live process started for `instanceId`: its command line carries
 * `--instance-id <instanceId>`. A pid reused by an unrelated process, or an exited process not yet
 * reaped (a zombie has an empty command line), is not the instance. Without /proc (not Linux) the
 * check degrades to "some process has this pid".
 */
export function isInstanceProcess(pid: number, instanceId: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (!HAS_PROC) return isAlive(pid);
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false;
  }
  const argv = cmdline.split('\0');
  for (let i = 0; i < argv.length - 1; i++) {
    if (argv[i] === '--instance-id' && argv[i + 1] === instanceId) return true;
    if (argv[i] === `--instance-id=${instanceId}`) return true;
  }
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Sends `signal` to the process group the instance leads (it was started detached, so its pid is
 * its group id), which also reaches whatever the worker started itself. Falls back to the process
 * alone when there is no such group. A process that is already gone is not an error.
 */
export function signalInstance(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** The line `cei node` prints on stdout once it serves (src/cli.ts). */
const READY_LINE = /^ready (\S+) (\S+)$/;

export interface ReadyLine {
  nodeId: string;
  address: string;
}

/**
 * Incremental reader of an instance's log for its ready line: each call reads only what was
 * appended since the last one, keeping a partial last line for the next call.
 */
export class ReadyScanner {
  private offset = 0;
  private partial = '';
  ready: ReadyLine | undefined;

  constructor(private readonly path: string) {}

  /** A scanner of what is appended to `path` from now on (a log a restarted process appends to). */
  static fromEnd(path: string): ReadyScanner {
    const scanner = new ReadyScanner(path);
    try {
      scanner.offset = statSync(path).size;
    } catch {
      // No log yet: from its start.
    }
    return scanner;
  }

  /** Reads what is new; returns the ready line once it has been seen (and from then on). */
  scan(): ReadyLine | undefined {
    if (this.ready) return this.ready;
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return undefined;
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= this.offset) return undefined;
      const buffer = Buffer.alloc(size - this.offset);
      const read = readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset += read;
      const lines = (this.partial + buffer.subarray(0, read).toString('utf8')).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        const m = READY_LINE.exec(line.trimEnd());
        if (m) {
          this.ready = { nodeId: m[1]!, address: m[2]! };
          break;
        }
      }
      return this.ready;
    } finally {
      closeSync(fd);
    }
  }
}

/** The last `bytes` of a log, trimmed, for error details; empty if it cannot be read. */
export function logTail(path: string, bytes = 2_000): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').trim();
  } finally {
    closeSync(fd);
  }
}
