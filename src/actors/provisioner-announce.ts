/**
 * The worker's side of contextualization: a node started by the provisioner (`cei node --role=worker
 * --instance-id <id>`) tells `provisioner/main`, once it is up in the cluster, which instance it is
 * and which node. The provisioner then knows the instance's node id and, with the membership, that
 * the instance is RUNNING (the original EPU's context broker, as one durable message).
 *
 * The announcement is a tell with a message id derived from the instance, the node and this start
 * of the node, retried with backoff until the provisioner's mailbox has it (through a fail-over of
 * the provisioner, say): the provisioner hears it at least once per start, and duplicates are
 * dropped by id.
 */
import type { ActorService } from '../runtime/actor-service.js';
import { Backoff } from '../runtime/backoff.js';
import type { Clock, TimerHandle } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { CeiError, errorMessage } from '../errors.js';
import { PROVISIONER_REF } from './provisioner-protocol.js';

export interface Announcement {
  instanceId: string;
  nodeId: string;
  /** The node's public address. */
  address: string;
}

const RETRY = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

/** Announces until the provisioner has the message or `stop` is called. Never throws. */
export function announceInstance(service: ActorService, who: Announcement, clock: Clock, log: Logger): { stop(): void; done: Promise<boolean> } {
  const backoff = new Backoff(RETRY);
  const messageId = `announce:${who.instanceId}:${who.nodeId}:${clock.now()}`;
  const message = { op: 'announce', instance_id: who.instanceId, node_id: who.nodeId, address: who.address };
  let stopped = false;
  let timer: TimerHandle | undefined;
  let finish: (announced: boolean) => void = () => {};
  const done = new Promise<boolean>((resolve) => (finish = resolve));
  const attempt = (): void => {
    timer = undefined;
    if (stopped) return finish(false);
    service.tell(PROVISIONER_REF, message, { messageId }).then(
      () => {
        log.info({ instanceId: who.instanceId }, 'announced this worker to the provisioner');
        finish(true);
      },
      (err: unknown) => {
        if (stopped) return finish(false);
        if (err instanceof CeiError && !err.retryable) {
          log.error({ instanceId: who.instanceId, err: errorMessage(err) }, 'the provisioner refused this worker\'s announcement');
          return finish(false);
        }
        timer = clock.setTimer(backoff.next(), attempt);
      },
    );
  };
  attempt();
  return {
    stop() {
      stopped = true;
      if (timer) {
        timer.cancel();
        finish(false);
      }
    },
    done,
  };
}
