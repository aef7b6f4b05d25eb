/**
 * Entries ordered by when they are due: an indexed binary min-heap. It lets one timer serve any
 * number of simulated instances (sim-cloud.ts): each instance is at most one entry, rescheduled in
 * place, so thousands of instances cost one heap slot each and no timer of their own.
 *
 * Entries due at the same time come out in the order they were scheduled, so a run on a fake clock
 * is deterministic.
 */
export interface DueEntry {
  /** When the entry is due (ms, the clock's time). Maintained by the queue. */
  dueAt: number;
  /** Tie-break among equal due times. Maintained by the queue. */
  dueSeq: number;
  /** Position in the heap, -1 when not queued. Maintained by the queue. */
  heapIndex: number;
}

export class DueQueue<T extends DueEntry> {
  private readonly heap: T[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  /** The earliest entry, without removing it. */
  peek(): T | undefined {
    return this.heap[0];
  }

  /** Queues `entry` due at `at`, or moves it there if it is queued already. */
  schedule(entry: T, at: number): void {
    this.remove(entry);
    entry.dueAt = at;
    entry.dueSeq = this.seq++;
    entry.heapIndex = this.heap.length;
    this.heap.push(entry);
    this.up(entry.heapIndex);
  }

  /** Takes `entry` out of the queue; a no-op when it is not queued. */
  remove(entry: T): void {
    const i = entry.heapIndex;
    if (i < 0) return;
    const last = this.heap.pop()!;
    entry.heapIndex = -1;
    if (last === entry) return;
    this.heap[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  /** Removes and returns the earliest entry if it is due at or before `now`. */
  popDue(now: number): T | undefined {
    const first = this.heap[0];
    if (!first || first.dueAt > now) return undefined;
    this.remove(first);
    return first;
  }

  private less(a: T, b: T): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.dueSeq < b.dueSeq);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.heap[i]!, this.heap[parent]!)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < n && this.less(this.heap[l]!, this.heap[least]!)) least = l;
      if (r < n && this.less(this.heap[r]!, this.heap[least]!)) least = r;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }
}
