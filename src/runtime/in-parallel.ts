/**
 * `fn` over `items`, at most `limit` at once; the results in the items' order. For work that waits
 * on LevelDB's thread pool or on peers, where one at a time leaves them idle and all at once queues
 * everything else behind it.
 */
export async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
