import { parseStored, splitActorKey } from '../runtime/store.js';
import type { StoredState } from '../runtime/envelope.js';

/**
 * Which stored actor copies this node trusts. A copy is trusted once this node received it (or
 * writes for it) from a live peer, or activated the actor as its owner, in this incarnation. It is
 * kept in memory only: a node that restarts, or learns it was declared down while alive, trusts
 * nothing it holds - its store may carry turns that were handled but never replicated nor
 * acknowledged, under seqs the actors' fail-over owners have since given to other messages.
 */
export class CopyTrust {
  private readonly trusted = new Set<string>();

  has(key: string): boolean {
    return this.trusted.has(key);
  }

  add(key: string): void {
    this.trusted.add(key);
  }

  delete(key: string): void {
    this.trusted.delete(key);
  }

  clear(): void {
    this.trusted.clear();
  }
}

type Entries = Array<[string, string]>;

/** The parts of one actor's stored copy that a merge looks at. */
interface Parsed {
  handled: number;
  /** Entries of the actor prefix, by key. */
  own: Map<string, string>;
  /** Registry and awake entries (outside the prefix). */
  index: Map<string, string>;
}

function parse(prefix: string, entries: Entries): Parsed {
  const own = new Map<string, string>();
  const index = new Map<string, string>();
  let handled = -1;
  for (const [key, value] of entries) {
    if (!key.startsWith(prefix)) {
      index.set(key, value);
      continue;
    }
    own.set(key, value);
    if (splitActorKey(prefix, key).kind === 's') handled = parseStored<StoredState>(key, value).h;
  }
  return { handled, own, index };
}

/**
 * Merges two copies of one actor: the winner is the one that holds anything at all, then the trusted
 * copy when only one is trusted, else the one with the higher handled seq (a state record is a full snapshot as of that seq; ties keep
 * `local`). The loser contributes nothing: copies of one actor agree up to the lower handled seq,
 * and whatever only the loser has comes from turns handled and never acknowledged on a node that
 * lost the actor - a dedup id or a pending message taken from it would make a client's retry of
 * that message count as a duplicate while its effect is gone. Registry and awake entries are kept
 * from either, as they only say that the actor exists and may have work.
 */
export function mergeCopies(
  prefix: string,
  local: { entries: Entries; trusted: boolean },
  incoming: { entries: Entries; trusted: boolean },
): { entries: Map<string, string>; trusted: boolean; incomingWon: boolean; handled: [local: number, incoming: number] } {
  const a = parse(prefix, local.entries);
  const b = parse(prefix, incoming.entries);
  // A copy with nothing in it (e.g. an owner that tried to activate the actor while its only copies
  // were on nodes that were down) has nothing to protect: it never beats a copy that has something.
  const incomingWins =
    a.own.size === 0 || b.own.size === 0 ? b.own.size > 0 : local.trusted !== incoming.trusted ? incoming.trusted : b.handled > a.handled;
  const [win, lose] = incomingWins ? [b, a] : [a, b];
  const result = new Map([...win.own, ...win.index]);
  for (const [key, value] of lose.index) if (!result.has(key)) result.set(key, value);
  // Trust goes with the winning content: an empty trusted copy must not vouch for the other's turns.
  return { entries: result, trusted: incomingWins ? incoming.trusted : local.trusted, incomingWon: incomingWins, handled: [a.handled, b.handled] };
}
