/**
 * Elastic capacity: how many workers of an execution engine type the dispatcher asks its EPU domain
 * (`pd_<engineType>`) to keep, and which workers to retire when that number drops.
 *
 *   need = ceil((queued + running) / slotsPerWorker) + spareWorkers,
 *          at least minWorkers and the workers that hold a process, at most maxWorkers
 *
 * Keeping at least the busy workers is the original's rule: the domain terminates the named retirees
 * first and then the newest, so asking for fewer workers than are busy would kill running processes.
 * maxWorkers is applied last, as a hard bound.
 *
 * Retirees are idle workers (no process on any of their agents), newest first by their first
 * heartbeat, never a busy one; when fewer idle workers exist than the drop, fewer are named.
 */

/** Capacity settings of one engine type. */
export interface EngineCapacity {
  /** Slots one worker offers. */
  slotsPerWorker: number;
  minWorkers: number;
  /** Unbounded when undefined. */
  maxWorkers?: number;
  /** Workers kept beyond what the processes need, so a new process starts without waiting for a VM. */
  spareWorkers: number;
}

export const CAPACITY_DEFAULTS: EngineCapacity = { slotsPerWorker: 1, minWorkers: 0, spareWorkers: 0 };

/** A worker (node) of the engine type, as the core sees it. */
export interface WorkerView {
  nodeId: string;
  /** When any of its agents first heartbeated. */
  firstHeardAt: number;
  /** Some agent on it holds a process. */
  busy: boolean;
}

export interface NeedInput {
  /** Distinct processes of the engine type waiting to be placed (or held for the end of boot). */
  queued: number;
  /** Distinct processes of the engine type holding a slot on one of its workers. */
  running: number;
  workers: readonly WorkerView[];
  capacity: EngineCapacity;
  /** The preserveN last asked of the domain; undefined if none was. */
  previous: number | undefined;
}

export interface NeedPlan {
  preserveN: number;
  /** Node ids to retire first; empty unless shrinking. */
  retire: string[];
}

/**
 * NeedInput for a caller that keeps the count of busy workers itself and builds the worker views
 * only when a drop needs them (they are read only to pick retirees): the plan then costs O(1) unless
 * the need drops.
 */
export interface CountedNeedInput extends Omit<NeedInput, 'workers'> {
  /** Workers with a process on them (`workers().filter((w) => w.busy).length`). */
  busyWorkers: number;
  workers: () => readonly WorkerView[];
}

/** The worker count the processes call for, within the bounds. */
export function computeNeed(input: Omit<NeedInput, 'previous'>): number {
  return needOf(input.queued, input.running, input.workers.filter((w) => w.busy).length, input.capacity);
}

function needOf(queued: number, running: number, busy: number, capacity: EngineCapacity): number {
  const slots = Math.max(1, Math.floor(capacity.slotsPerWorker));
  const byProcesses = Math.ceil((queued + running) / slots) + capacity.spareWorkers;
  const need = Math.max(capacity.minWorkers, busy, byProcesses);
  return capacity.maxWorkers === undefined ? need : Math.min(capacity.maxWorkers, need);
}

/** The idle workers to retire when `count` fewer are wanted: newest first, never a busy one. */
export function pickRetirees(workers: readonly WorkerView[], count: number): string[] {
  if (count <= 0) return [];
  return workers
    .filter((w) => !w.busy)
    .sort((a, b) => b.firstHeardAt - a.firstHeardAt || (a.nodeId < b.nodeId ? 1 : a.nodeId > b.nodeId ? -1 : 0))
    .slice(0, count)
    .map((w) => w.nodeId);
}

/**
 * The need and, when it drops, which workers to retire.
 *
 * While any process is queued or running, the need drops only by the workers it names: for the rest
 * of a drop the domain would terminate its newest instances, and those are the workers that have not
 * heartbeated yet - about to take the queued work (a busy worker killed, its processes placed again).
 * The rest of the drop follows once those workers are known and idle. With no work at all, nothing
 * can land on a worker, so the whole drop goes through.
 */
export function planNeed(input: NeedInput): NeedPlan {
  const { workers } = input;
  return planCountedNeed({ ...input, busyWorkers: workers.filter((w) => w.busy).length, workers: () => workers });
}

/** planNeed over a CountedNeedInput: the same plan for the same workers. */
export function planCountedNeed(input: CountedNeedInput): NeedPlan {
  const wanted = needOf(input.queued, input.running, input.busyWorkers, input.capacity);
  if (input.previous === undefined || wanted >= input.previous) return { preserveN: wanted, retire: [] };
  // Retire against the workers that exist, not against the last ask: a domain still growing toward
  // the last ask has nothing to retire yet.
  const workers = input.workers();
  const retire = pickRetirees(workers, Math.min(input.previous, workers.length) - wanted);
  const idle = input.queued + input.running === 0;
  return { preserveN: idle ? wanted : Math.max(wanted, input.previous - retire.length), retire };
}

/** The EPU domain serving an engine type. */
export function domainOf(engineType: string): string {
  return `pd_${engineType}`;
}
