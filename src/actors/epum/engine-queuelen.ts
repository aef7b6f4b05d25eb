/**
 * `queuelen`: size a domain by the length of one queue (a stream subscription or an actor's mailbox,
 * read from the sensor series named `queue`). Above `high_water` the target grows by one, below
 * `low_water` it shrinks by one, always within [`min_instances`, `max_instances`].
 *
 * Two rules from the original EPU: while any instance is still coming up, the engine changes nothing
 * about the target (the new capacity has not had a chance to drain the queue yet, and acting on the
 * old length would overshoot); and it never goes to zero instances while work is queued, even below
 * low water, because nothing else would drain it.
 *
 * Unlike the original, the target is kept in the engine state, so an instance that fails is replaced
 * at once instead of waiting for the queue to grow back past high water.
 */
import type { z } from 'zod';
import {
  actionsFor,
  census,
  checkConf,
  confObject,
  clamp,
  isPending,
  latestSample,
  nonEmptyString,
  pickVictims,
  wholeNumber,
  type ConfCheck,
  type Decision,
  type Engine,
  type EngineInput,
  type LaunchAction,
} from './engine.js';

const schema = confObject({
  queue: nonEmptyString(),
  high_water: wholeNumber(),
  low_water: wholeNumber(),
  min_instances: wholeNumber().default(0),
  max_instances: wholeNumber(),
  deployable_type: nonEmptyString(),
  site: nonEmptyString(),
}).superRefine((c, ctx) => {
  if (c.low_water > c.high_water) {
    ctx.addIssue({ code: 'custom', path: ['low_water'], message: `must not exceed high_water (${c.low_water} > ${c.high_water})` });
  }
  if (c.min_instances > c.max_instances) {
    ctx.addIssue({ code: 'custom', path: ['min_instances'], message: `must not exceed max_instances (${c.min_instances} > ${c.max_instances})` });
  }
});

export type QueuelenConf = z.infer<typeof schema>;

export type QueuelenState = {
  /** How many instances the domain should have. */
  target: number;
};

function decide({ conf, state, instances, sensors }: EngineInput<QueuelenConf, QueuelenState>): Decision<QueuelenState> {
  const { counted, doomed } = census(instances);
  // A reconfigured min/max applies to the target carried over from the old conf.
  let target = clamp(state.target, conf.min_instances, conf.max_instances);

  const reading = latestSample(sensors[conf.queue]);
  if (reading !== undefined && !counted.some(isPending)) {
    const queued = reading.value;
    if (queued > conf.high_water) target += 1;
    else if (queued < conf.low_water && !(queued > 0 && target <= 1)) target -= 1;
    if (queued > 0 && target === 0) target = 1;
    target = clamp(target, conf.min_instances, conf.max_instances);
  }

  const launches: LaunchAction[] = [];
  const destroy = doomed.concat(pickVictims(counted, counted.length - target));
  if (counted.length < target) {
    launches.push({ type: 'launch', site: conf.site, deployable_type: conf.deployable_type, count: target - counted.length, vars: {} });
  }
  return { actions: actionsFor(destroy, launches), state: { target } };
}

export const queuelenEngine: Engine<QueuelenConf, QueuelenState> = {
  name: 'queuelen',
  validateConf: (conf: unknown): ConfCheck<QueuelenConf> => checkConf(schema, conf),
  initialState: (conf) => ({ target: conf.min_instances }),
  decide,
};
