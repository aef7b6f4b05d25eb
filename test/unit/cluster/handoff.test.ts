/**
 * HandoffCoordinator on one node with a real LevelDB store, its ActorSystem and a replicator over
 * the in-memory transport: how a rebalance run reacts when the rings move on under it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_TEST_PRESET } from '../../../src/cluster/cluster-options.js';
import { CopyTrust } from '../../../src/cluster/copy-trust.js';
import { HandoffCoordinator } from '../../../src/cluster/handoff.js';
import { MembershipView, type Member } from '../../../src/cluster/membership.js';
import { ClusterReplicator } from '../../../src/cluster/replication.js';
import { RingPlacement } from '../../../src/cluster/ring-placement.js';
import { TRANSPORT_TEST_PRESET } from '../../../src/cluster/transport-core.js';
import { MemoryNetwork } from '../../../src/cluster/transport-memory.js';
import { systemClock } from '../../../src/runtime/clock.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { ActorRef } from '../../../src/runtime/ref.js';
import { keys } from '../../../src/runtime/store.js';
import { recorder } from '../../support/actors.js';
import { deferred } from '../../support/deferred.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();
const stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

const member = (id: string, status: Member['status'] = 'up'): Member => ({ id, address: id, role: 'control', status, incarnation: 1, since: 0 });

describe('HandoffCoordinator', () => {
  it('ends a run whose rings moved on while it was reading the copies to offer, without waiting for that read', async () => {
    const placement = new RingPlacement('a', 2, () => 'any', new CopyTrust(), () => systemClock.now());
    placement.update(MembershipView.of([member('a'), member('b')], { version: 1 }));
    const trust = new CopyTrust();
    const transport = new MemoryNetwork().transport(TRANSPORT_TEST_PRESET);
    stops.push(() => transport.stop());
    const node = await nodes.node([recorder]);
    const { store } = node;
    const replicator = new ClusterReplicator('a', placement, transport, store, systemClock, silentLogger, 2_000, trust);
    const handoff = new HandoffCoordinator('a', placement, node.system, store, replicator, transport, systemClock, silentLogger, CLUSTER_TEST_PRESET, trust);

    // Copies held here of actors that b owns: the run offers them to b, reading them first.
    const theirs: ActorRef[] = [];
    for (let i = 0; theirs.length < 5; i++) {
      const ref = { type: 'recorder', id: `r${i}` };
      if (placement.ownerOf(ref) === 'b') theirs.push(ref);
    }
    await store.write(
      theirs.flatMap((ref) => [
        { type: 'put' as const, key: keys.registry(ref), value: '' },
        { type: 'put' as const, key: keys.state(keys.actor(ref)), value: JSON.stringify({ v: { seen: [] }, h: 1 }) },
      ]),
      true,
    );
    // The read of those copies hangs until the test lets it go.
    const readStarted = deferred();
    const readGate = deferred();
    stops.push(() => readGate.resolve());
    const scanMany = store.scanMany.bind(store);
    store.scanMany = async (prefixes) => {
      readStarted.resolve();
      await readGate.promise;
      return scanMany(prefixes);
    };

    handoff.kick();
    await readStarted.promise;
    // b is declared down: every actor is ours now, and the new rings' run has nothing to offer.
    expect(placement.update(MembershipView.of([member('a'), member('b', 'down')], { version: 2 }))).toBe(true);
    handoff.ringChanged();
    await waitFor(() => handoff.runs === 1, { what: "the new rings' run, while the old run's read still hangs", timeoutMs: 2_000 });
    await handoff.idle();
    expect(handoff.handedOff).toBe(0);
  });
});
