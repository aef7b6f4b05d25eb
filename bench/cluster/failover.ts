import { performance } from 'node:perf_hooks';
import type { CeiClient } from '../../src/client.js';
import { counterRef, isRetryable, type CounterLedger, type CounterRef } from './counters.js';
import { sleep, type LocalCluster, type LocalNode } from './local-cluster.js';

export interface FailoverOptions {
  /** SIGKILL: the owner dies (its links reset at once). SIGSTOP: it hangs (only silence gives it away). */
  signal: 'SIGKILL' | 'SIGSTOP';
  rounds: number;
  /** Counter ids are `<prefix><round>-<j>`. */
  prefix: string;
  /** Deadline (and ask timeout) of each ask while waiting for the fail-over: the polling granularity. */
  askMs: number;
  /** A round fails when no ask succeeded this long after the signal. */
  giveUpMs: number;
  /** Acknowledged tells the chosen actor holds before its owner is signalled. */
  tellsBefore: number;
  /** After SIGCONT: how long the stopped node gets to come back up by itself before it is killed and restarted. */
  selfRejoinMs: number;
  /** How long all members may take to be up again after a restart (or the SIGCONT). */
  upTimeoutMs: number;
}

export interface FailoverRound {
  /** Signal to the first successful ask through a surviving node (ms). */
  ms: number;
  /** Index of the node signalled, and the node that answered as the new owner. */
  node: number;
  newOwner: string;
  /** Asks sent until one succeeded, and the error the last failed one met. */
  asks: number;
  lastError: string;
  /** The first answer did not hold what was acknowledged: "<got> != <want>", else undefined. */
  wrongState?: string;
  /** Restart (or SIGCONT) to every member up on every node (ms). */
  rejoinMs: number;
  /** SIGSTOP only: the node came back up by itself after SIGCONT (else it was killed and restarted). */
  selfRejoined?: boolean;
}

async function retrying<T>(what: string, giveUpMs: number, fn: () => Promise<T>): Promise<T> {
  const until = performance.now() + giveUpMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err) || performance.now() >= until) throw new Error(`${what}: ${(err as Error).message}`);
      await sleep(5);
    }
  }
}

/**
 * A counter owned by `target` with a live replica, as every live node describes it (so that their
 * rings agree), holding `tellsBefore` + 1 acknowledged tells. Candidates are told once (which
 * activates them) until the owner is `target`; hashing spreads ids, so a few candidates do.
 */
async function actorOwnedBy(cluster: LocalCluster, ledger: CounterLedger, target: LocalNode, idPrefix: string, opts: FailoverOptions): Promise<CounterRef> {
  const until = performance.now() + opts.upTimeoutMs;
  for (let j = 0; performance.now() < until; j++) {
    const ref = counterRef(`${idPrefix}-${j}`);
    const live = cluster.live();
    const via = live[j % live.length]!;
    // One id per tell, kept across its retries: a retry after a lost answer is then not applied twice.
    const first = `${ref.id}:1`;
    await retrying(`tell ${ref.id}`, 10_000, () => cluster.client(via).tell(ref, { add: 1 }, first, 5_000));
    ledger.ack(ref.id, 1);
    const infos = await Promise.all(live.map((n) => retrying(`describe ${ref.id} via node ${n.index}`, 10_000, () => cluster.client(n).describe(ref, 5_000))));
    const owner = infos[0]!.node;
    if (owner !== target.id) continue;
    if (!infos.every((i) => i.node === owner && i.replicas.length >= 1 && i.replicas.join() === infos[0]!.replicas.join())) {
      // The views agree (all members up) but some node routes differently: let the rings settle.
      await sleep(20);
      continue;
    }
    for (let k = 0; k < opts.tellsBefore; k++) {
      const id = `${ref.id}:2:${k}`;
      await retrying(`tell ${ref.id}`, 10_000, () => cluster.client(live[k % live.length]!).tell(ref, { add: 2 }, id, 5_000));
      ledger.ack(ref.id, 2);
    }
    return ref;
  }
  throw new Error(`no actor owned by node ${target.index} (${target.id}) with a replica within ${opts.upTimeoutMs} ms: ${await cluster.views()}`);
}

/**
 * `rounds` fail-overs: each round signals the owner of a chosen counter (the nodes take turns), then
 * asks the counter `{"get": true}` in a tight loop through the surviving nodes in turn, each ask with
 * a deadline of `askMs`, until one succeeds; the time from the signal to that answer is the round's
 * figure. The answer must hold every tell acknowledged before the signal (else the round is marked).
 * Then the node comes back (SIGKILL: restarted on its data directory and port; SIGSTOP: SIGCONT, and
 * killed and restarted if it is not up by itself within `selfRejoinMs`), and the next round starts
 * once every member is up on every node. No other load runs meanwhile.
 */
export async function failoverRounds(cluster: LocalCluster, ledger: CounterLedger, opts: FailoverOptions, note: (line: string) => void): Promise<FailoverRound[]> {
  const rounds: FailoverRound[] = [];
  await cluster.heal(opts.upTimeoutMs);
  for (let r = 0; r < opts.rounds; r++) {
    const target = cluster.nodes[r % cluster.nodes.length]!;
    const ref = await actorOwnedBy(cluster, ledger, target, `${opts.prefix}${r}`, opts);
    const want = ledger.expected(ref.id);
    const survivors: CeiClient[] = cluster.live().filter((n) => n !== target).map((n) => cluster.client(n));

    const signalledAt = performance.now();
    await cluster.signal(target, opts.signal);
    let asks = 0;
    let lastError = '';
    let answer: { value: number; count: number } | undefined;
    while (answer === undefined) {
      const sentAt = performance.now();
      if (sentAt - signalledAt >= opts.giveUpMs) {
        throw new Error(
          `round ${r + 1}: no ask of ${ref.id} succeeded within ${opts.giveUpMs} ms after ${opts.signal} of node ${target.index} (${target.id}); ` +
            `last error: ${lastError}; ${await cluster.views()}`,
        );
      }
      try {
        answer = await survivors[asks++ % survivors.length]!.ask<{ value: number; count: number }>(ref, { get: true }, opts.askMs, opts.askMs);
      } catch (err) {
        lastError = (err as Error).message;
        // A tight loop, but not a spinning one when a node answers an error at once.
        if (performance.now() - sentAt < 2) await sleep(2);
      }
    }
    const ms = performance.now() - signalledAt;
    const wrongState = answer.value === want.value && answer.count === want.count ? undefined : `${JSON.stringify(answer)} != ${JSON.stringify(want)}`;
    if (wrongState) note(`${opts.signal} round ${r + 1}: ${ref.id} answered ${wrongState} (acknowledged) after its owner node ${target.index} was signalled`);
    const info = await retrying(`describe ${ref.id}`, 10_000, () => survivors[0]!.describe(ref, 5_000));
    if (info.node === target.id) throw new Error(`round ${r + 1}: ${ref.id} answered, but the signalled node ${target.id} is still described as its owner`);

    const backAt = performance.now();
    let selfRejoined: boolean | undefined;
    if (opts.signal === 'SIGKILL') {
      await cluster.start(target);
    } else {
      await cluster.signal(target, 'SIGCONT');
      selfRejoined = await cluster.waitAllUp(opts.selfRejoinMs).then(
        () => true,
        async (err: Error) => {
          note(`SIGSTOP round ${r + 1}: node ${target.index} did not come back up by itself within ${opts.selfRejoinMs} ms after SIGCONT (${err.message}); killing and restarting it`);
          await cluster.signal(target, 'SIGKILL');
          await cluster.start(target);
          return false;
        },
      );
    }
    await cluster.waitAllUp(opts.upTimeoutMs);
    const round = { ms, node: target.index, newOwner: info.node, asks, lastError, wrongState, rejoinMs: performance.now() - backAt, selfRejoined };
    rounds.push(round);
    note(
      `${opts.signal} round ${r + 1}: node ${target.index} -> ${round.newOwner} answered ${ref.id} after ${round.ms.toFixed(0)} ms, ${asks} asks` +
        `${lastError ? ` (last error: ${lastError})` : ''}; all up ${round.rejoinMs.toFixed(0)} ms after ${opts.signal === 'SIGKILL' ? 'the restart' : 'SIGCONT'}` +
        `${selfRejoined === false ? ' (killed and restarted)' : ''}`,
    );
  }
  return rounds;
}
