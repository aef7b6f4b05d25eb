import type { ClusterHandlers } from '../generated/cei/v1/Cluster.js';
import type { MembershipView } from '../cluster/membership.js';
import { InvalidArgumentError } from '../errors.js';
import { validateRef, type ActorRef } from '../runtime/ref.js';
import { toServiceError } from './status.js';

export interface MembershipSource {
  readonly view: MembershipView;
  readonly isFenced: boolean;
  readonly nodeId: string;
  /** The owner this node's rings name for `ref`, if any member can host it. */
  ownerOf(ref: ActorRef): string | undefined;
}

/** Refs one Owners call may ask about: bounds the reply (about 30 bytes per owner). */
export const MAX_OWNERS_REFS = 10_000;

/** The public Cluster service: this node's view of the membership and of placement. */
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

    Owners(call, callback) {
      try {
        const refs = call.request.refs;
        if (refs.length > MAX_OWNERS_REFS) throw new InvalidArgumentError(`refs: at most ${MAX_OWNERS_REFS} per call, not ${refs.length}`);
        // Every ref is checked before any answer, so a bad one fails the whole call.
        const valid = refs.map((r, i) => validateRef(r, `refs[${i}]`));
        const s = source();
        if (!s) {
          callback(null, { owners: valid.map(() => ''), version: 0, node: '' });
          return;
        }
        callback(null, { owners: valid.map((r) => s.ownerOf(r) ?? ''), version: s.view.version, node: s.nodeId });
      } catch (err) {
        callback(toServiceError(err));
      }
    },
  };
}
