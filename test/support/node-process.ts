import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { NODE_V8_FLAGS } from '../../src/node-flags.js';

export const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

/**
 * Every node process a test started and that has not exited. When the test process ends (a failed
 * hook, a timeout that kills the worker), they are killed too: a stray node keeps a core busy for
 * as long as the machine runs, and skews every later test and benchmark.
 */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface NodeProcess {
  proc: ChildProcess;
  id: string;
  address: string;
  /** Everything the process wrote to stderr so far. */
  stderr: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | string>;
}

export function tempDir(prefix = 'cei-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs `node dist/cli.js ...args` to completion: exit code, stdout, stderr. */
export function runCli(args: string[], timeoutMs = 20_000, input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) proc.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`cei ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/**
 * Starts `node dist/cli.js node` (directly, so signals reach the node itself) and resolves once it
 * printed its ready line; rejects with its stderr if it exits first or is not ready by the deadline.
 */
export function startNode(opts: {
  dataDir: string;
  role?: string;
  listen?: string;
  args?: string[];
  readyTimeoutMs?: number;
  /** Extra environment for the node process (e.g. grpc_proxy for the partition tests). */
  env?: Record<string, string>;
}): Promise<NodeProcess> {
  const args = [
    ...NODE_V8_FLAGS,
    CLI,
    'node',
    `--role=${opts.role ?? 'bootstrap'}`,
    '--listen',
    opts.listen ?? '127.0.0.1:0',
    '--data',
    opts.dataDir,
    '--log-level',
    process.env.CEI_TEST_LOG_LEVEL ?? 'warn',
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  // CEI_TEST_NODE_LOGS=dir keeps every node's log in a file, for runs that hang rather than fail.
  const logDir = process.env.CEI_TEST_NODE_LOGS;
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    const file = createWriteStream(join(logDir, `${basename(opts.dataDir)}.log`), { flags: 'a' });
    proc.stderr!.pipe(file);
  }
  const exited = new Promise<number | string>((res) => proc.on('exit', (code, signal) => res(code ?? signal ?? -1)));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`node not ready within ${opts.readyTimeoutMs ?? 15_000} ms; stderr:\n${stderr}`));
    }, opts.readyTimeoutMs ?? 15_000);
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      const m = /^ready (\S+) (\S+)$/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolvePromise({
        proc,
        id: m[1]!,
        address: m[2]!,
        stderr: () => stderr,
        exited,
        kill: (signal = 'SIGKILL') => void proc.kill(signal),
        stop: async () => {
          proc.kill('SIGTERM');
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited (${code}) before ready; stderr:\n${stderr}`));
    });
  });
}
