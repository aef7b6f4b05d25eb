/**
 * MembershipService against gossip crafted by the test, over the in-memory transport: the cases that
 * a real cluster reaches only by bad timing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_TEST_PRESET } from '../../../src/cluster/cluster-options.js';
import type { Member, MemberChange, MemberStatus } from '../../../src/cluster/membership.js';
import { MembershipService } from '../../../src/cluster/membership-service.js';
import type { Link, LinkHandler } from '../../../src/cluster/transport.js';
import { TRANSPORT_TEST_PRESET } from '../../../src/cluster/transport-core.js';
import { MemoryNetwork, type MemoryTransport } from '../../../src/cluster/transport-memory.js';
import { systemClock } from '../../../src/runtime/clock.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { waitFor } from '../../support/wait.js';

const stops: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

const quiet: LinkHandler = { onLinkUp() {}, onLinkDown() {}, onMessage() {}, onRequest: async () => null };

/** A bootstrap node (a cluster of one, up at once) and a raw peer the test speaks gossip through. */
async function nodeAndPeer(): Promise<{ service: MembershipService; changes: MemberChange[]; link: Link; peer: Member }> {
  const net = new MemoryNetwork();
  const transport = net.transport(TRANSPORT_TEST_PRESET);
  const changes: MemberChange[] = [];
  const service = new MembershipService({ id: 'c', address: 'c', role: 'bootstrap', incarnation: 1_000 }, transport, systemClock, silentLogger, CLUSTER_TEST_PRESET, { member: false, addresses: [] }, {
    onView: (_view, c) => changes.push(...c),
  });
  service.start([]);
  stops.push(() => service.stop());
  const raw: MemoryTransport = net.transport(TRANSPORT_TEST_PRESET);
  raw.start({ id: 'x', address: 'x', role: 'worker', incarnation: 1 }, quiet);
  stops.push(() => raw.stop());
  raw.dial('c');
  const link = (await waitFor(() => raw.link('c'), { what: 'a link to c' }))!;
  const peer: Member = { id: 'x', address: 'x', role: 'worker', status: 'up', incarnation: 1, since: 0 };
  return { service, changes, link, peer };
}

function gossip(link: Link, version: number, members: Member[]): void {
  link.send('member.gossip', { view: { version, members, tombstones: [] }, votes: [] });
}

const said = (status: MemberStatus, incarnation: number): Member => ({ id: 'c', address: 'c', role: 'bootstrap', status, incarnation, since: 0 });

describe('MembershipService', () => {
  it('refutes a suspicion with a newer incarnation', async () => {
    const { service, link, peer } = await nodeAndPeer();
    await waitFor(() => service.view.get('c')?.status === 'up', { what: 'c up' });
    gossip(link, 100, [said('suspect', 1_000), peer]);
    await waitFor(() => (service.view.get('c')?.incarnation ?? 0) > 1_000 && service.view.get('c')?.status === 'up', { what: 'c to refute' });
  });

  it('learns it was declared down at an incarnation it had already refuted, and rejoins as declared down', async () => {
    const { service, changes, link, peer } = await nodeAndPeer();
    await waitFor(() => service.view.get('c')?.status === 'up', { what: 'c up' });
    gossip(link, 100, [said('suspect', 1_000), peer]);
    const refuted = await waitFor(() => {
      const me = service.view.get('c');
      return me && me.incarnation > 1_000 ? me.incarnation : undefined;
    }, { what: 'c to refute' });
    // The voters' verdict on the old incarnation arrives late: the merge keeps the newer entry, so
    // only this check tells the node that its actors were failed over meanwhile.
    gossip(link, 200, [said('down', 1_000), peer]);
    await waitFor(() => changes.some((c) => c.id === 'c' && c.to === 'down'), { what: 'c to report itself declared down' });
    expect(service.view.get('c')!.incarnation).toBeGreaterThan(refuted!);
    // Said once: the same verdict again changes nothing.
    const before = changes.filter((c) => c.id === 'c' && c.to === 'down').length;
    gossip(link, 300, [said('down', 1_000), peer]);
    gossip(link, 301, [said('up', 1), peer]);
    await waitFor(() => service.view.get('c')?.status === 'up', { what: 'c up again' });
    expect(changes.filter((c) => c.id === 'c' && c.to === 'down').length).toBe(before);
  });

  it('a restarted node takes its previous life being declared down as no news', async () => {
    const { service, changes, link, peer } = await nodeAndPeer();
    await waitFor(() => service.view.get('c')?.status === 'up', { what: 'c up' });
    gossip(link, 100, [said('down', 999), peer]);
    gossip(link, 101, [said('up', 1_000), peer]);
    await waitFor(() => changes.some((c) => c.id === 'x'), { what: 'the gossip to be taken in' });
    expect(changes.some((c) => c.id === 'c' && c.to === 'down')).toBe(false);
    expect(service.view.get('c')!.incarnation).toBe(1_000);
  });

  it('a restarted bootstrap that was the only voter comes up alone; one that knew another voter waits for it', async () => {
    const restarted = (otherVoters: boolean | undefined): MembershipService => {
      const transport = new MemoryNetwork().transport(TRANSPORT_TEST_PRESET);
      // Its last view listed a worker, now gone: the address is dialed and never answers.
      const stored = { member: true, addresses: ['gone-worker'], ...(otherVoters === undefined ? {} : { otherVoters }) };
      const service = new MembershipService({ id: 'b', address: 'b', role: 'bootstrap', incarnation: 2_000 }, transport, systemClock, silentLogger, CLUSTER_TEST_PRESET, stored, {});
      service.start([]);
      stops.push(() => service.stop());
      return service;
    };
    const alone = restarted(false);
    const waiting = restarted(true);
    const old = restarted(undefined);
    await waitFor(() => alone.view.get('b')?.status === 'up', { what: 'the sole voter up' });
    // The same ticks passed for the others: they still wait to hear from the voter they knew.
    expect(waiting.view.get('b')?.status).toBe('joining');
    expect(old.view.get('b')?.status).toBe('joining');
  });
});
