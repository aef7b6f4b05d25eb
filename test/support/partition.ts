/**
 * Network partitions between node processes of a TestCluster, made with one ConnectProxy per node
 * (connect-proxy.ts): node i is started with `proxyEnv(proxies[i])`, so every connection it dials to
 * another node goes through its own proxy. Every node-to-node connection is dialed by one of its two
 * ends, so cutting A from B = A's proxy blocks B's address and B's proxy blocks A's. Clients of the
 * test process connect to the nodes directly and are never cut.
 */
import type { MembersReply__Output } from '../../src/generated/cei/v1/MembersReply.js';
import type { ConnectProxy } from './connect-proxy.js';
import type { TestCluster } from './cluster.js';
import { waitFor } from './wait.js';

/** Environment for a node whose outbound gRPC connections go through `proxy` (and never bypass it). */
export function proxyEnv(proxy: ConnectProxy): Record<string, string> {
  // grpc-js skips the proxy for targets in no_grpc_proxy (or no_proxy when that is empty).
  return { grpc_proxy: proxy.url, no_grpc_proxy: '', no_proxy: '' };
}

/** Cuts every connection between a node of groupA and a node of groupB, both ways. */
export function partition(cluster: TestCluster, proxies: ConnectProxy[], groupA: number[], groupB: number[]): void {
  for (const a of groupA) {
    for (const b of groupB) {
      proxies[a]!.block(cluster.address(b));
      proxies[b]!.block(cluster.address(a));
    }
  }
}

/** Undoes partition(cluster, proxies, groupA, groupB): the nodes redial on their own. */
export function heal(cluster: TestCluster, proxies: ConnectProxy[], groupA: number[], groupB: number[]): void {
  for (const a of groupA) {
    for (const b of groupB) {
      proxies[a]!.unblock(cluster.address(b));
      proxies[b]!.unblock(cluster.address(a));
    }
  }
}

/** The pairs (i < j) of nodes that have no open tunnel between them, through either node's proxy. */
export function unlinkedPairs(cluster: TestCluster, proxies: ConnectProxy[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < proxies.length; i++) {
    for (let j = i + 1; j < proxies.length; j++) {
      const linked = proxies[i]!.openTunnels().includes(cluster.address(j)) || proxies[j]!.openTunnels().includes(cluster.address(i));
      if (!linked) out.push([i, j]);
    }
  }
  return out;
}

/**
 * Waits until each of `nodes` reports every listed member in the given status ('gone': absent), and
 * resolves with their last replies. Like TestCluster.waitForStatuses, but only the chosen nodes are
 * asked (e.g. the majority side of a partition).
 */
export async function waitForStatusesOn(
  cluster: TestCluster,
  nodes: number[],
  want: Record<string, string>,
  timeoutMs = 20_000,
): Promise<MembersReply__Output[]> {
  let last = '';
  try {
    return await waitFor<MembersReply__Output[] | undefined>(
      async () => {
        const replies: MembersReply__Output[] = [];
        for (const i of nodes) {
          const reply = await cluster.client(i).members(2_000).catch(() => undefined);
          if (!reply) return undefined;
          last = `node ${i}: ${reply.members.map((m) => `${m.id}=${m.status}`).join(' ')}${reply.fenced ? ' (fenced)' : ''}`;
          for (const [id, status] of Object.entries(want)) {
            const m = reply.members.find((x) => x.id === id);
            if (status === 'gone' ? m !== undefined : m?.status !== status) return undefined;
          }
          replies.push(reply);
        }
        return replies;
      },
      { timeoutMs, what: `members ${JSON.stringify(want)} on nodes ${nodes.join(', ')}` },
    ) as MembersReply__Output[];
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${last}`);
  }
}
