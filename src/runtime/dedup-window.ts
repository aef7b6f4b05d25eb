export interface DedupEntry {
  seq: number;
  at: number;
  /** Set while the first copy is not yet durable: a repeat is acknowledged only after it is. */
  pending?: Promise<unknown>;
}

/**
 * The message ids an actor has accepted recently, each with the seq it got. Bounded by age and by
 * count, whichever is reached first; the oldest ids leave first. Insertion order is age order
 * because ids are added as they arrive.
 */
export class DedupWindow {
  private readonly entries = new Map<string, DedupEntry>();

  constructor(
    readonly windowMs: number,
    readonly maxIds: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(messageId: string, now: number): DedupEntry | undefined {
    const entry = this.entries.get(messageId);
    if (entry && now - entry.at >= this.windowMs) return undefined;
    return entry;
  }

  /** Adds an id; returns the ids that fell out of the window (their stored entries are to be deleted). */
  add(messageId: string, entry: DedupEntry, now: number): string[] {
    const evicted: string[] = [];
    this.entries.delete(messageId);
    this.entries.set(messageId, entry);
    for (const [id, e] of this.entries) {
      if (this.entries.size - evicted.length > this.maxIds || now - e.at >= this.windowMs) evicted.push(id);
      else break;
    }
    for (const id of evicted) this.entries.delete(id);
    return evicted;
  }
}
