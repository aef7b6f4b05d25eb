import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A child process that announced on stdout that it is serving. */
export interface ReadyChild {
  readonly proc: ChildProcess;
  /** The groups of the ready line's match. */
  readonly match: RegExpExecArray;
  /** The last 64 KiB the child wrote to stderr. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves with how it exited. */
  stop(graceMs?: number): Promise<number | string>;
}

export interface ReadyChildOptions {
  /** The line (on stdout) that says the child is serving. */
  ready: RegExp;
  /** Milliseconds to wait for the ready line before killing the child. */
  deadlineMs: number;
  /** What to call the child in errors. */
  name: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const STDERR_KEEP = 64 * 1024;

/**
 * Starts `command args` and resolves once a stdout line matches `ready`. Rejects (with the child's
 * stderr) when it exits first or misses the deadline, in which case it is killed.
 */
export function startReadyChild(command: string, args: string[], options: ReadyChildOptions): Promise<ReadyChild> {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd, env: options.env });
  let stderr = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-STDERR_KEEP);
  });
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  let alive = true;
  void exited.then(() => (alive = false));
  const stop = async (graceMs = 10_000): Promise<number | string> => {
    if (!alive) return exited;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return new Promise<ReadyChild>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${options.name} printed no ready line within ${options.deadlineMs} ms; stderr:\n${stderr}`));
    }, options.deadlineMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} could not be started: ${err.message}`));
    });
    lines.on('line', (line) => {
      const match = options.ready.exec(line);
      if (!match) return;
      clearTimeout(timer);
      lines.removeAllListeners('line');
      // Keep draining stdout so that a chatty child never blocks on a full pipe.
      proc.stdout!.resume();
      resolve({ proc, match, stderr: () => stderr, exited, stop });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited (${code}) before it was ready; stderr:\n${stderr}`));
    });
  });
}
