import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startReadyChild, type ReadyChild } from './ready-child.js';
import { newestMtime } from './machine.js';
import { NODE_V8_FLAGS } from '../../src/node-flags.js';

/** The package root (bench/support/ -> ../..). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** A `node dist/cli.js node` child process serving its public gRPC API. */
export interface CeiNodeProcess {
  readonly id: string;
  readonly address: string;
  readonly child: ReadyChild;
  /** SIGTERM (a clean stop), SIGKILL after a grace period. */
  stop(): Promise<number | string>;
}

/**
 * Runs `npm run build` when dist/cli.js does not exist, so that the node benchmarked is the built
 * binary an operator runs. Throws when the build fails.
 */
export function ensureBuilt(log: (line: string) => void): void {
  if (existsSync(CLI)) return;
  log(`${CLI} is missing: running npm run build`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['run', 'build'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0 || !existsSync(CLI)) {
    throw new Error(`npm run build failed (exit ${result.status ?? result.signal}); cannot benchmark a node without dist/cli.js`);
  }
}

/** True when a file under src/ changed after dist/cli.js was built: a node would run older code. */
export function distIsStale(): boolean {
  return existsSync(CLI) && newestMtime(fileURLToPath(new URL('../../src', import.meta.url))) > statSync(CLI).mtimeMs;
}

/** Starts a bootstrap node on a free loopback port with data in `dataDir`, and waits for its ready line. */
export async function startCeiNode(dataDir: string, opts: { deadlineMs?: number; args?: string[] } = {}): Promise<CeiNodeProcess> {
  const args = [...NODE_V8_FLAGS, CLI, 'node', '--role=bootstrap', '--listen', '127.0.0.1:0', '--data', dataDir, '--log-level', 'warn', ...(opts.args ?? [])];
  const child = await startReadyChild(process.execPath, args, {
    ready: /^ready (\S+) (\S+)$/,
    deadlineMs: opts.deadlineMs ?? 20_000,
    name: 'cei node',
    cwd: PACKAGE_ROOT,
  });
  return { id: child.match[1]!, address: child.match[2]!, child, stop: () => child.stop() };
}
