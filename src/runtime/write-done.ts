/**
 * Callback forms of "this write is durable". A tell's write goes through the group committer, the
 * replica streams and the cell, and as promises that path cost some ten promises and their
 * microtasks per tell, most of a node's promise work under bulk tells (measured: docs/cluster.md,
 * ninth session). The hot path passes these callbacks instead; promises stay at the edges.
 */

/**
 * Called once, with no argument when the write is durable, or with why it failed. Must not throw:
 * it runs inside the code that settles a whole batch of writers.
 */
export type WriteDone = (err?: unknown) => void;

/** A rejection reason that is never undefined, so that `done(err)` always reads as a failure. */
export function failureOf(err: unknown): unknown {
  return err === undefined ? new Error('write failed without a reason') : err;
}

/**
 * One WriteDone for `parts` writes that make up one: `done` runs once every part reported, with the
 * first failure if any part failed (a failed part must not let a waiter pass before the others are
 * in).
 */
export function joinWrites(parts: number, done: WriteDone): WriteDone {
  let left = parts;
  let failure: unknown;
  return (err) => {
    if (err !== undefined && failure === undefined) failure = err;
    if (--left === 0) done(failure);
  };
}

/** `promise` reported to `done`. */
export function whenSettled(promise: Promise<unknown>, done: WriteDone): void {
  promise.then(
    () => done(),
    (err: unknown) => done(failureOf(err)),
  );
}
