import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface MachineInfo {
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  memMiB: number;
  loadBefore: number[];
  /** Share (0..1) of all cores busy while the run sampled them before starting: other work competing. */
  busyBefore: number;
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq;
    busy += t;
    total += t + c.times.idle;
  }
  return { busy, total };
}

/** What the figures were measured on, with how busy the cores were over `sampleMs` just before. */
export async function describeMachine(sampleMs: number): Promise<MachineInfo> {
  const a = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, sampleMs));
  const b = cpuTimes();
  const total = b.total - a.total;
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '',
    memMiB: Math.round(totalmem() / 2 ** 20),
    loadBefore: loadavg(),
    busyBefore: total > 0 ? (b.busy - a.busy) / total : 0,
  };
}

/** Newest modification time (ms) of the files under `dir`, recursively; 0 when there are none. */
export function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}
