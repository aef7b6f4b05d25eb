import { describe, expect, it } from 'vitest';
import { mergeCopies } from '../../../src/cluster/copy-trust.js';
import { keys } from '../../../src/runtime/store.js';

const ref = { type: 'counter', id: 'c-1' };
const prefix = keys.actor(ref);

/** One actor's stored copy: its state as of `handled`, plus a dedup id and the registry entry. */
function copy(handled: number, value: number, dedupId: string): Array<[string, string]> {
  return [
    [keys.state(prefix), JSON.stringify({ v: { value }, h: handled, a: 1 })],
    [keys.dedup(prefix, dedupId), JSON.stringify({ s: handled, t: 0 })],
    [keys.registry(ref), JSON.stringify({ created: 0 })],
  ];
}

const stateOf = (entries: Map<string, string>) => JSON.parse(entries.get(keys.state(prefix))!) as { v: { value: number }; h: number };

describe('mergeCopies', () => {
  it('the trusted copy wins whole over an untrusted one, even one with more handled turns', () => {
    const merged = mergeCopies(prefix, { entries: copy(3, 30, 'm3'), trusted: true }, { entries: copy(5, 50, 'm5'), trusted: false });
    expect(stateOf(merged.entries).h).toBe(3);
    expect(merged.entries.has(keys.dedup(prefix, 'm5'))).toBe(false);
    expect(merged.trusted).toBe(true);
  });

  it('between copies of equal trust, the higher handled seq wins whole; a tie keeps the local copy', () => {
    const higher = mergeCopies(prefix, { entries: copy(3, 30, 'm3'), trusted: false }, { entries: copy(5, 50, 'm5'), trusted: false });
    expect(stateOf(higher.entries).v.value).toBe(50);
    expect(higher.entries.has(keys.dedup(prefix, 'm3'))).toBe(false);
    const tie = mergeCopies(prefix, { entries: copy(4, 40, 'local'), trusted: true }, { entries: copy(4, 41, 'incoming'), trusted: true });
    expect(stateOf(tie.entries).v.value).toBe(40);
  });

  it('an empty copy never wins, even a trusted one (an owner that found no copy while the holders were down)', () => {
    const merged = mergeCopies(prefix, { entries: [], trusted: true }, { entries: copy(2, 20, 'm2'), trusted: false });
    expect(stateOf(merged.entries).v.value).toBe(20);
    expect(merged.entries.has(keys.dedup(prefix, 'm2'))).toBe(true);
    const kept = mergeCopies(prefix, { entries: copy(2, 20, 'm2'), trusted: false }, { entries: [], trusted: true });
    expect(stateOf(kept.entries).v.value).toBe(20);
    // Trust goes with the content: the empty side's trust must not vouch for the other side's turns.
    expect(merged.trusted).toBe(false);
    expect(kept.trusted).toBe(false);
  });

  it('keeps the registry entry from either side', () => {
    const loser = copy(1, 10, 'm1');
    const winner = copy(2, 20, 'm2').filter(([key]) => key !== keys.registry(ref));
    const merged = mergeCopies(prefix, { entries: loser, trusted: false }, { entries: winner, trusted: false });
    expect(merged.entries.has(keys.registry(ref))).toBe(true);
  });
});
