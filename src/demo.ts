import { CeiClient, tellMany, type TellItem } from './client.js';

const COUNTERS = 4;
const TELLS = 20_000;

/**
 * The embedded default's demo: spawns a few counters on the node at `address`, sends them durable
 * tells over one TellStream, and reads them back. Counters keep their values across runs on the same
 * data directory, which is the point: nothing acknowledged is lost.
 */
export async function runDemo(address: string, print: (line: string) => void, signal: AbortSignal): Promise<void> {
  const client = new CeiClient(address);
  try {
    const refs = Array.from({ length: COUNTERS }, (_, i) => ({ type: 'counter', id: `demo-${i}` }));
    const before: Array<{ value: number; count: number }> = [];
    for (const ref of refs) {
      const spawned = await client.spawn(ref);
      before.push(await client.ask(ref, { get: true }, 5000));
      print(`demo: ${spawned.created ? 'spawned' : 'found'} counter/${ref.id} on ${spawned.node}: value ${before.at(-1)!.value}`);
    }
    if (signal.aborted) return;
    const runId = Date.now().toString(36);
    const items: TellItem[] = Array.from({ length: TELLS }, (_, i) => ({
      to: refs[i % COUNTERS]!,
      payload: { add: 1 + (i % 3) },
      messageId: `demo-${runId}-${i}`,
    }));
    const started = performance.now();
    await tellMany(client.actors, items);
    const seconds = (performance.now() - started) / 1000;
    print(`demo: ${TELLS} durable tells (synced to LevelDB before each ack) over one TellStream in ${seconds.toFixed(2)} s = ${Math.round(TELLS / seconds)}/s`);
    for (const [i, ref] of refs.entries()) {
      const after = await client.ask<{ value: number; count: number }>(ref, { get: true }, 10_000);
      const sent = items.filter((it) => it.to === ref).reduce((s, it) => s + (it.payload as { add: number }).add, 0);
      print(`demo: counter/${ref.id}: value ${before[i]!.value} -> ${after.value} (+${after.value - before[i]!.value}, sent +${sent}), ${after.count} messages handled in all`);
    }
  } finally {
    client.close();
  }
}
