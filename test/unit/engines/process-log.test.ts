import { describe, expect, it } from 'vitest';
import { ProcessLog, type LogEntry } from '../../../src/engines/process-log.js';

describe('ProcessLog', () => {
  it('numbers entries in order and returns what is newer than a seq', () => {
    let now = 1000;
    const log = new ProcessLog({ now: () => now++ });
    log.append('one', 'stdout');
    log.append('two', 'stderr');
    log.append('three', 'engine');
    expect(log.lines()).toEqual([
      { seq: 1, at: 1000, source: 'stdout', line: 'one' },
      { seq: 2, at: 1001, source: 'stderr', line: 'two' },
      { seq: 3, at: 1002, source: 'engine', line: 'three' },
    ]);
    expect(log.lines(2).map((e) => e.line)).toEqual(['three']);
    expect(log.lines(3)).toEqual([]);
    expect(log.lastSeq).toBe(3);
  });

  it('drops the oldest lines past maxLines and counts them; seq keeps growing', () => {
    const log = new ProcessLog({ maxLines: 3 });
    for (let i = 1; i <= 10; i++) log.append(`line ${i}`, 'stdout');
    expect(log.lines().map((e) => e.seq)).toEqual([8, 9, 10]);
    expect(log.dropped).toBe(7);
    expect(log.size).toBe(3);
    // A follower that last saw seq 4 learns from the gap (next is 8) that lines were dropped.
    expect(log.lines(4)[0]!.seq).toBe(8);
  });

  it('keeps total bytes under maxBytes and cuts a single line longer than that', () => {
    const log = new ProcessLog({ maxLines: 1000, maxBytes: 100 });
    for (let i = 0; i < 10; i++) log.append('x'.repeat(30), 'stdout');
    expect(log.byteSize).toBeLessThanOrEqual(100);
    expect(log.size).toBe(3);
    expect(log.dropped).toBe(7);
    const long = log.append('é'.repeat(500), 'stderr');
    expect(Buffer.byteLength(long.line)).toBeLessThanOrEqual(100);
    expect(long.line.endsWith(' [truncated]')).toBe(true);
    expect(long.line).not.toContain('\uFFFD');
    expect(log.size).toBe(1);
  });

  it('survives many drops (compaction) with the right entries', () => {
    const log = new ProcessLog({ maxLines: 5 });
    for (let i = 1; i <= 5000; i++) log.append(String(i), 'stdout');
    expect(log.lines().map((e) => e.line)).toEqual(['4996', '4997', '4998', '4999', '5000']);
    expect(log.dropped).toBe(4995);
  });

  it('tells followers of each new entry until they unsubscribe; a throwing follower breaks nothing', () => {
    const log = new ProcessLog();
    const seen: LogEntry[] = [];
    log.append('before', 'stdout');
    const unfollow = log.follow((e) => seen.push(e));
    const unfollowBad = log.follow(() => {
      throw new Error('follower bug');
    });
    log.append('a', 'stdout');
    log.append('b', 'stderr');
    unfollow();
    unfollowBad();
    log.append('c', 'stdout');
    expect(seen.map((e) => [e.seq, e.source, e.line])).toEqual([
      [2, 'stdout', 'a'],
      [3, 'stderr', 'b'],
    ]);
    expect(log.lines().map((e) => e.line)).toEqual(['before', 'a', 'b', 'c']);
  });

  it('returns the tail of one source and rejects silly bounds', () => {
    const log = new ProcessLog();
    log.append('o1', 'stdout');
    log.append('e1', 'stderr');
    log.append('e2', 'stderr');
    log.append('o2', 'stdout');
    expect(log.tail(5, 'stderr')).toEqual(['e1', 'e2']);
    expect(log.tail(2)).toEqual(['e2', 'o2']);
    expect(() => new ProcessLog({ maxLines: 0 })).toThrow(RangeError);
  });
});
