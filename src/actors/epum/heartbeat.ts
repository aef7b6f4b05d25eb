/**
 * The worker's side of EPU management's health monitoring: a node started by the provisioner
 * (`--instance-id`) finds the domain it belongs to and heartbeats to it, with its CPU load and free
 * memory, until it stops.
 *
 * The domain is found in the instance's own record: the domain launches every instance with the
 * launch variable `epum_domain` (./protocol.ts DOMAIN_VAR), and the worker asks the provisioner for
 * its record once (retrying with backoff while the provisioner is out of reach). An instance
 * launched by anything else has no such variable and does not heartbeat.
 *
 * Each heartbeat is an ask, so the domain can answer: `zombie` means the domain asked for this
 * instance's termination long ago (or was told it was gone) and it is still running; the worker then
 * calls `onZombie`, whose job is to stop the node. NOT_FOUND means the domain is gone: the worker
 * stops heartbeating. Any other failure (a fail-over in progress) is retried on the next beat.
 */
import { cpuUsage } from 'node:process';
import { freemem, loadavg } from 'node:os';
import type { ActorService } from '../../runtime/actor-service.js';
import { Backoff } from '../../runtime/backoff.js';
import type { Clock, TimerHandle } from '../../runtime/clock.js';
import type { Logger } from '../../runtime/logger.js';
import { CeiError, errorMessage } from '../../errors.js';
import { askRole } from '../role-reply.js';
import { PROVISIONER_REF, type NodesReply } from '../provisioner-protocol.js';
import { DOMAIN_VAR, domainRef, type DomainReplies } from './protocol.js';

export interface HeartbeatOptions {
  /** Time between heartbeats. */
  intervalMs: number;
  /** Looking up the instance's record is given up after this many failed tries. */
  lookupAttempts: number;
  /** Called once when the domain says this instance is a zombie. */
  onZombie(): void;
}

export const HEARTBEAT_DEFAULTS: Omit<HeartbeatOptions, 'onZombie'> = { intervalMs: 1_000, lookupAttempts: 30 };

const LOOKUP_RETRY = { initialMs: 200, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

export interface HeartbeatHandle {
  stop(): void;
  /** The domain it heartbeats to, once known. */
  readonly domain: string | undefined;
}

/** Starts heartbeating; never throws. */
export function startHeartbeat(
  service: ActorService,
  who: { instanceId: string; nodeId: string },
  clock: Clock,
  log: Logger,
  options: Partial<HeartbeatOptions> = {},
): HeartbeatHandle {
  const opts = { ...HEARTBEAT_DEFAULTS, onZombie: () => {}, ...options };
  const backoff = new Backoff(LOOKUP_RETRY);
  let stopped = false;
  let timer: TimerHandle | undefined;
  let domain: string | undefined;
  let tries = 0;
  let lastCpu = cpuUsage();
  let lastAt = clock.now();

  const later = (ms: number, fn: () => void): void => {
    if (!stopped) timer = clock.setTimer(ms, fn);
  };

  const lookup = (): void => {
    tries++;
    askRole<NodesReply>(service, PROVISIONER_REF, { op: 'describe_nodes', instance_ids: [who.instanceId] }, opts.intervalMs * 2).then(
      (r) => {
        const record = r.instances[0];
        if (!record) {
          if (tries >= opts.lookupAttempts) return log.warn({ instanceId: who.instanceId }, 'the provisioner has no record of this instance; not heartbeating');
          return later(backoff.next(), lookup);
        }
        domain = record.vars[DOMAIN_VAR];
        if (domain === undefined) return log.debug({ instanceId: who.instanceId }, 'this instance belongs to no EPU domain; not heartbeating');
        log.info({ instanceId: who.instanceId, domain }, 'heartbeating to the domain');
        beat();
      },
      (err: unknown) => {
        if (tries >= opts.lookupAttempts) return log.warn({ instanceId: who.instanceId, err: errorMessage(err) }, 'could not read this instance\'s record; not heartbeating');
        later(backoff.next(), lookup);
      },
    );
  };

  const metrics = (): { cpu_load: number; free_memory: number; load_average: number } => {
    const now = clock.now();
    const cpu = cpuUsage(lastCpu);
    const elapsedUs = Math.max(1, (now - lastAt) * 1000);
    lastCpu = cpuUsage();
    lastAt = now;
    return { cpu_load: Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 1000, free_memory: freemem(), load_average: loadavg()[0]! };
  };

  const beat = (): void => {
    if (stopped || domain === undefined) return;
    const message = { op: 'heartbeat', instance_id: who.instanceId, node_id: who.nodeId, ...metrics() };
    askRole<DomainReplies['heartbeat']>(service, domainRef(domain), message, opts.intervalMs * 2).then(
      (r) => {
        if (r.verdict === 'zombie') {
          stopped = true;
          log.error({ instanceId: who.instanceId, domain }, 'the domain terminated this instance long ago: it is a zombie; stopping');
          opts.onZombie();
          return;
        }
        later(opts.intervalMs, beat);
      },
      (err: unknown) => {
        if (err instanceof CeiError && err.code === 'NOT_FOUND') {
          log.warn({ instanceId: who.instanceId, domain }, 'the domain is gone; not heartbeating');
          return;
        }
        log.debug({ instanceId: who.instanceId, domain, err: errorMessage(err) }, 'heartbeat failed; trying again');
        later(opts.intervalMs, beat);
      },
    );
  };

  lookup();
  return {
    stop() {
      stopped = true;
      timer?.cancel();
    },
    get domain() {
      return domain;
    },
  };
}
