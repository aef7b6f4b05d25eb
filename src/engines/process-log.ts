/**
 * A bounded log of one process's output: what it wrote to stdout and stderr, and what its engine
 * noted about it. Old lines are dropped first once either bound is passed, so a chatty process
 * costs at most `maxLines` lines and about `maxBytes` bytes however long it runs. Every entry gets
 * the next sequence number, so a follower that remembers the last seq it saw asks for what is new
 * with lines(lastSeq) and learns from a gap that lines were dropped in between.
 */

export type LogSource = 'stdout' | 'stderr' | 'engine';

export interface LogEntry {
  /** 1, 2, 3 ... in append order; never reused, also not after lines are dropped. */
  seq: number;
  /** Milliseconds since the epoch, from the log's clock. */
  at: number;
  source: LogSource;
  line: string;
}

export type LogListener = (entry: LogEntry) => void;

export interface ProcessLogOptions {
  /** Most lines kept (default 1000). */
  maxLines: number;
  /** Most bytes kept, counted as UTF-8 of the lines (default 256 KiB). A longer single line is cut to this. */
  maxBytes: number;
  /** Clock for `at` (default Date.now). */
  now: () => number;
}

export const DEFAULT_PROCESS_LOG_OPTIONS: ProcessLogOptions = {
  maxLines: 1000,
  maxBytes: 256 * 1024,
  now: Date.now,
};

const TRUNCATED_MARK = ' [truncated]';

interface StoredEntry extends LogEntry {
  bytes: number;
}

export class ProcessLog {
  private readonly options: ProcessLogOptions;
  // A plain array with a moving head: shift() on every drop would make a full log O(n) per append.
  private entries: (StoredEntry | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  private nextSeq = 1;
  private droppedCount = 0;
  private readonly listeners = new Set<LogListener>();

  constructor(options: Partial<ProcessLogOptions> = {}) {
    this.options = { ...DEFAULT_PROCESS_LOG_OPTIONS, ...options };
    if (!(this.options.maxLines >= 1) || !(this.options.maxBytes >= 64)) {
      throw new RangeError(`ProcessLog needs maxLines >= 1 and maxBytes >= 64 (got ${this.options.maxLines}, ${this.options.maxBytes})`);
    }
  }

  /**
   * Adds one line (without its newline) and tells the followers, synchronously and in order. A
   * follower that throws is not allowed to break the engine's read loop that called append: its
   * error is dropped.
   */
  append(line: string, source: LogSource): LogEntry {
    let text = line;
    let bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.options.maxBytes) {
      text = cutToBytes(text, this.options.maxBytes - Buffer.byteLength(TRUNCATED_MARK)) + TRUNCATED_MARK;
      bytes = Buffer.byteLength(text, 'utf8');
    }
    const entry: StoredEntry = { seq: this.nextSeq++, at: this.options.now(), source, line: text, bytes };
    this.entries.push(entry);
    this.bytes += bytes;
    while (this.size > this.options.maxLines || this.bytes > this.options.maxBytes) this.dropOldest();
    const published: LogEntry = { seq: entry.seq, at: entry.at, source, line: text };
    for (const listener of this.listeners) {
      try {
        listener(published);
      } catch {
        // See the method's contract: a follower's bug must not stop the log.
      }
    }
    return published;
  }

  /** The kept entries with seq > sinceSeq (all kept entries without it), oldest first. */
  lines(sinceSeq = 0): LogEntry[] {
    const out: LogEntry[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.seq > sinceSeq) out.push({ seq: e.seq, at: e.at, source: e.source, line: e.line });
    }
    return out;
  }

  /** Calls `listener` with every entry appended from now on; returns the unsubscribe function. */
  follow(listener: LogListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Lines dropped so far to keep within the bounds. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** The seq of the newest entry, 0 before the first. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Lines kept now. */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** Bytes kept now (UTF-8 of the lines). */
  get byteSize(): number {
    return this.bytes;
  }

  /** The last `n` kept lines from `source`, oldest first (for error messages). */
  tail(n: number, source?: LogSource): string[] {
    const out: string[] = [];
    for (let i = this.entries.length - 1; i >= this.head && out.length < n; i--) {
      const e = this.entries[i]!;
      if (source === undefined || e.source === source) out.push(e.line);
    }
    return out.reverse();
  }

  private dropOldest(): void {
    const e = this.entries[this.head]!;
    this.entries[this.head] = undefined; // let the dropped line be collected before compaction
    this.head++;
    this.bytes -= e.bytes;
    this.droppedCount++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/** The longest prefix of `text` whose UTF-8 is at most `maxBytes`, never splitting a character. */
function cutToBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8').subarray(0, Math.max(0, maxBytes));
  // A cut inside a multi-byte sequence decodes to U+FFFD at the end; drop it.
  return buf.toString('utf8').replace(/\uFFFD$/, '');
}
