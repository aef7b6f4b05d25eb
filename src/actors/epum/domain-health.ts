/**
 * How a domain judges the health of its instances: pure functions of an instance, the cluster's
 * membership as the hosting node sees it, the instance's last heartbeat and the time.
 *
 *   OK              nothing wrong is known
 *   OUT_OF_CONTACT  RUNNING, but silent past `missing_timeout` (it had heartbeated before), or its
 *                   node is suspected or leaving; still counted, back to OK when heard from again
 *   MISSING         RUNNING and its node is declared down or has left (at once: the membership event
 *                   is the fastest news of a crash), OUT_OF_CONTACT for `really_missing_timeout`
 *                   more, or not RUNNING `boot_timeout` after its launch; replaced and terminated
 *   ZOMBIE          it heartbeated `zombie_seconds` after its termination was asked for (or after
 *                   the provisioner reported it gone); terminated again, and told to stop
 *   PROCESS_ERROR   the provisioner gave up on it (RUNNING_FAILED) or the worker reported a fault
 *
 *   OK <-> OUT_OF_CONTACT -> MISSING;  OK | OUT_OF_CONTACT -> MISSING | PROCESS_ERROR;  any -> ZOMBIE
 * MISSING, ZOMBIE and PROCESS_ERROR stay until the instance is gone: the engines replace such
 * instances and the domain terminates them, so a late heartbeat does not bring one back.
 *
 * Silence counts only for an instance heard from by this incarnation of the domain actor (heartbeat
 * times are kept in memory, see ./epum.ts): an instance that never heartbeats (a simulated one, say)
 * is judged by membership and the provisioner alone, and a domain that just failed over does not
 * take the time it was away for silence.
 */
import type { RoleMember } from '../role-env.js';
import type { HealthState } from './engine.js';
import type { HealthConf } from './protocol.js';
import { isGoing, isPendingState, type DomainDraft, type DomainInstance } from './domain-state.js';

export interface HealthInputs {
  now: number;
  conf: HealthConf;
  /** Node id to status, as the node hosting the domain sees the cluster now. */
  members: ReadonlyMap<string, RoleMember['status']>;
  /** When the instance last heartbeated (to this incarnation of the domain actor). */
  heardAt(instanceId: string): number | undefined;
}

const STICKY: ReadonlySet<HealthState> = new Set(['MISSING', 'ZOMBIE', 'PROCESS_ERROR']);

/** The health `i` should have now, or undefined to leave it as it is. */
export function judge(i: DomainInstance, h: HealthInputs): { health: HealthState; reason?: string } | undefined {
  const { conf, now } = h;
  if (!conf.monitor_health || isGoing(i) || STICKY.has(i.health)) return undefined;
  if (i.state === 'RUNNING_FAILED') return { health: 'PROCESS_ERROR', reason: i.state_detail ?? 'not RUNNING within the provisioner\'s ready timeout' };
  if (isPendingState(i.state)) {
    if (now - i.launch_time > conf.boot_timeout * 1000) return { health: 'MISSING', reason: `not RUNNING ${conf.boot_timeout} s after its launch` };
    return undefined;
  }
  if (i.state !== 'RUNNING') return undefined;
  const status = i.node_id === undefined ? undefined : h.members.get(i.node_id);
  if (status === 'down' || status === 'left') return { health: 'MISSING', reason: `its node ${i.node_id} is ${status}` };
  let silence: string | undefined;
  if (status === 'suspect' || status === 'leaving') {
    silence = `its node ${i.node_id} is ${status}`;
  } else {
    const heard = h.heardAt(i.id);
    if (heard !== undefined && now - heard > conf.missing_timeout * 1000) silence = `no heartbeat for ${Math.round((now - heard) / 100) / 10} s`;
  }
  if (silence !== undefined) {
    if (i.health === 'OK') return { health: 'OUT_OF_CONTACT', reason: silence };
    if (now - i.health_since > conf.really_missing_timeout * 1000) {
      return { health: 'MISSING', reason: `${silence}; out of contact for more than ${conf.really_missing_timeout} s` };
    }
    return undefined;
  }
  return i.health === 'OUT_OF_CONTACT' ? { health: 'OK' } : undefined;
}

/** Judges every instance of the draft. */
export function judgeAll(d: DomainDraft, h: HealthInputs): void {
  for (const i of d.instances()) {
    const verdict = judge(i, h);
    if (verdict) d.setHealth(i, verdict.health, verdict.reason);
  }
}

/** A heartbeat from `i` now makes it a zombie: it is going or gone, and has been for zombie_seconds. */
export function isZombieBeat(i: DomainInstance, now: number, conf: HealthConf): boolean {
  if (!conf.monitor_health || !isGoing(i)) return false;
  const since = i.terminate_asked_at ?? i.state_changed_at;
  return now - since > conf.zombie_seconds * 1000;
}
