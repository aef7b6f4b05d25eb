/**
 * One `node dist/cli.js node --role=bootstrap` for the EPU bench (default flags: the registry, the
 * provisioner and every domain live on it), with what the figures need besides its API: how long
 * it took from spawn to its ready line, and the CPU time its process has used (Linux /proc).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DtrsClient } from '../../src/client-dtrs.js';
import { EpumClient } from '../../src/client-epum.js';
import type { DomainDescription } from '../../src/actors/epum/protocol.js';
import { reapOnExit } from '../cluster/exit-reaper.js';
import { startCeiNode, type CeiNodeProcess } from '../support/cei-node.js';

export interface EpuNode {
  readonly node: CeiNodeProcess;
  readonly pid: number;
  /** Spawn to ready line, ms. */
  readonly startMs: number;
  readonly dtrs: DtrsClient;
  readonly epum: EpumClient;
  /** SIGTERM (SIGKILL after a grace), clients closed. */
  stop(): Promise<void>;
}

export async function startEpuNode(dataDir: string): Promise<EpuNode> {
  const t0 = performance.now();
  const node = await startCeiNode(dataDir, { deadlineMs: 30_000 });
  const startMs = performance.now() - t0;
  reapOnExit(node.child.proc);
  const dtrs = new DtrsClient(node.address);
  const epum = new EpumClient(node.address);
  return {
    node,
    pid: node.child.proc.pid!,
    startMs,
    dtrs,
    epum,
    stop: async () => {
      dtrs.close();
      epum.close();
      await node.stop();
    },
  };
}

let clockTicks: number | undefined;

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clockTicks = Number(r.stdout?.trim()) || 100;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / clockTicks;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Instances of a domain that are RUNNING and healthy, by id. */
export function runningIds(d: DomainDescription): string[] {
  return d.instances
    .filter((i) => i.state === 'RUNNING' && i.health === 'OK')
    .map((i) => i.instance_id)
    .sort();
}
