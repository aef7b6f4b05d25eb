/**
 * Worker processes of the local driver as this machine sees them: every live process whose command
 * line carries `--instance-id <id>` and a `--data` directory under a site's `data_dir` (Linux
 * /proc). The bench kills the ones it caused when it ends, whatever happened: they are detached from
 * the node that launched them, so killing the node does not end them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signalInstance } from '../../src/iaas/local-process.js';

export interface WorkerProcess {
  pid: number;
  instanceId: string;
}

export const HAS_PROC = existsSync('/proc/self/cmdline');

/** Live worker processes whose --data lies under `siteDir`. */
export function workerProcesses(siteDir: string): WorkerProcess[] {
  if (!HAS_PROC) return [];
  const out: WorkerProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const at = argv.indexOf('--instance-id');
    const dataAt = argv.indexOf('--data');
    if (at < 0 || dataAt < 0 || !argv[dataAt + 1]?.startsWith(siteDir)) continue;
    out.push({ pid: Number(name), instanceId: argv[at + 1]! });
  }
  return out;
}

/** The pid the local driver recorded for an instance (`<siteDir>/<id>/instance.json`), if any. */
export function recordedPid(siteDir: string, instanceId: string): number | undefined {
  try {
    const record = JSON.parse(readFileSync(join(siteDir, instanceId, 'instance.json'), 'utf8')) as { pid?: number };
    return typeof record.pid === 'number' ? record.pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILLs every worker process under `siteDir`; returns how many there were. */
export function killWorkers(siteDir: string): number {
  const found = workerProcesses(siteDir);
  for (const w of found) signalInstance(w.pid, 'SIGKILL');
  return found.length;
}

const siteDirs = new Set<string>();
let hooked = false;

/** Kills the workers under `siteDir` when this process exits (an error, Ctrl-C), unless `forget` is called first. */
export function reapWorkersOnExit(siteDir: string): () => void {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const dir of siteDirs) killWorkers(dir);
    });
  }
  siteDirs.add(siteDir);
  return () => siteDirs.delete(siteDir);
}
