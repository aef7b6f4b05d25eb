import type { ClusterHandlers } from '../generated/cei/v1/Cluster.js';
import type { MembershipView } from '../cluster/membership.js';

export interface MembershipSource {
  readonly view: MembershipView;
  readonly isFenced: boolean;
  readonly nodeId: string;
}

/** The public Cluster service: this node's view of the membership. */
export function clusterService(source: () => MembershipSource | undefined): ClusterHandlers {
  return {
    Members(_call, callback) {
      const s = source();
      if (!s) {
        callback(null, { members: [], version: 0, node: '', fenced: true });
        return;
      }
      const view = s.view;
      callback(null, {
        members: view.list().map((m) => ({ id: m.id, address: m.address, role: m.role, status: m.status, incarnation: m.incarnation, since_ms: m.since })),
        version: view.version,
        node: s.nodeId,
        fenced: s.isFenced,
      });
    },
  };
}
