/**
 * One end of a peer link for tests of the code above the transport (router, replication) that
 * must control what the other end answers: lose an answer, refuse, or play an older node. The
 * real links run in the transport tests and in the cluster, chaos and bench runs.
 */
import type { Link, PeerInfo, Transport } from '../../src/cluster/transport.js';

const PEER_B: PeerInfo = { id: 'b', address: 'b', role: 'control', incarnation: 1 };

/** A Link to `peer` whose requests `answer` settles; send and close do nothing. */
export function stubLink(answer: (method: string, body: unknown, link: Link) => Promise<unknown>, peer: PeerInfo = PEER_B): Link {
  const link: Link = {
    peer,
    open: true,
    send() {},
    close() {},
    request<T>(method: string, body: unknown): Promise<T> {
      return answer(method, body, link) as Promise<T>;
    },
  };
  return link;
}

/** A transport that knows one link, to its peer, and nothing else. */
export function transportTo(link: Link): Transport {
  return { link: (id: string) => (id === link.peer.id ? link : undefined) } as unknown as Transport;
}
