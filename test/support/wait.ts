/**
 * Waiting without sleeping: poll a condition, letting real I/O (LevelDB's thread pool) and, when the
 * test asks for it, a FakeClock move between polls. A fixed sleep guesses how long something takes;
 * these wait exactly until it happened and fail with a message that says what never did.
 */

export interface WaitOptions {
  /** Real milliseconds before giving up (default 5000). */
  timeoutMs?: number;
  /** Runs between polls, e.g. `() => clock.advance(5)` when the condition needs fake time to pass. */
  step?: () => void;
  /** What is awaited, for the error message (default: the predicate's source). */
  what?: string;
}

const DEFAULT_TIMEOUT_MS = 5_000;

function describeWait(what: string | undefined, fn: () => unknown): string {
  return what ?? fn.toString().replace(/\s+/g, ' ').slice(0, 200);
}

/** Yields to the event loop: mostly one turn (setImmediate), sometimes a short real timeout for the I/O threads. */
function pause(round: number): Promise<void> {
  return new Promise((resolve) => (round % 8 === 7 ? setTimeout(resolve, 2) : setImmediate(resolve)));
}

/**
 * Resolves with the predicate's first truthy result. A predicate that throws counts as "not yet"
 * (so it may hold `expect` calls); at the deadline the last error is part of the message.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let round = 0; ; round++) {
    try {
      const value = await predicate();
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const last = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`waitFor timed out after ${timeoutMs} ms waiting for: ${describeWait(options.what, predicate)}${last}`);
    }
    options.step?.();
    await pause(round);
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects with a clear message after `timeoutMs` real ms.
 * For calls that would otherwise hang until the test runner's own timeout (an ask on a FakeClock
 * never times out by itself).
 */
export function within<T>(promise: Promise<T>, what: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
