/**
 * Readiness checks of a plan's services: the standard gRPC health check of a node (the server as a
 * whole, '' - a node reports SERVING once it joined and serves the public API), and a service's
 * `ready` command (exit 0 = ready), each bounded by a deadline. A check never throws: it says
 * whether the service is ready and, when not, why.
 */
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { errorMessage } from '../errors.js';
import type { ServiceRecord } from './run-store.js';
import { groupRuns, isServiceProcess } from './service-process.js';

export type CheckResult = { ok: true } | { ok: false; reason: string };

const HealthClient = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');

/** One gRPC health check of the node at `address`. */
export function healthCheck(address: string, deadlineMs: number): Promise<CheckResult> {
  const client = new HealthClient(address, grpc.credentials.createInsecure()) as unknown as {
    Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
    close(): void;
  };
  return new Promise((resolve) => {
    client.Check({ service: '' }, { deadline: Date.now() + deadlineMs }, (err, res) => {
      client.close();
      if (err) resolve({ ok: false, reason: `health check of ${address}: ${err.details || err.message}` });
      else if (res?.status !== 'SERVING') resolve({ ok: false, reason: `health check of ${address}: ${res?.status ?? 'no status'}` });
      else resolve({ ok: true });
    });
  });
}

/** Runs `command` through `sh -c` once; ready when it exits 0 within `timeoutMs`. */
export function commandCheck(command: string, opts: { cwd?: string; env?: Record<string, string>; timeoutMs: number }): Promise<CheckResult> {
  return new Promise((resolve) => {
    let output = '';
    let child;
    try {
      child = spawn('sh', ['-c', command], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ ok: false, reason: `ready command: ${errorMessage(err)}` });
      return;
    }
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-400));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `ready command: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true });
      else {
        const why = signal ? `killed after ${opts.timeoutMs} ms` : `exit code ${code}`;
        const out = output.trim().split('\n').pop();
        resolve({ ok: false, reason: `ready command "${command}": ${why}${out ? ` (${out})` : ''}` });
      }
    });
  });
}

/** What identifies a recorded service's process in its command line: a node's data directory, a command's text. */
export function processMarker(s: Pick<ServiceRecord, 'kind' | 'data_dir' | 'command'>): string | undefined {
  return s.kind === 'node' ? s.data_dir : s.kind === 'command' ? s.command : undefined;
}

/**
 * Whether the recorded service still runs: a node's process (its data directory in its command
 * line, so a recycled pid is not taken for it), or anything of a command's process group (its shell
 * may have exec'd into another program, or left children that are the service).
 */
export function serviceRuns(s: Pick<ServiceRecord, 'kind' | 'pid' | 'data_dir' | 'command'>): boolean {
  if (s.kind === 'command') return s.pid !== undefined && groupRuns(s.pid);
  return isServiceProcess(s.pid, processMarker(s));
}

/**
 * Re-checks a recorded service as it runs now: its process is still the one recorded (when it has
 * one; a one-shot command's may have ended), and its readiness check passes (its `ready` command,
 * else for a node or an address the gRPC health check; a command without `ready` is ready while its
 * process runs).
 */
export async function checkRecord(s: ServiceRecord, o: { checkDeadlineMs: number; commandTimeoutMs: number }): Promise<CheckResult> {
  if (s.kind !== 'remote' && !serviceRuns(s)) {
    // A one-shot command that ran to completion may still pass its ready command.
    if (!(s.kind === 'command' && s.ready && !s.longRunning)) return { ok: false, reason: s.pid === undefined ? 'never started' : `process ${s.pid} is gone` };
  }
  if (s.ready) return commandCheck(s.ready, { cwd: s.cwd, env: s.env, timeoutMs: o.commandTimeoutMs });
  if (s.kind === 'command') return { ok: true };
  if (!s.address) return { ok: false, reason: 'no address recorded' };
  return healthCheck(s.address, o.checkDeadlineMs);
}
