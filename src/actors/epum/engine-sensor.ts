/**
 * `sensor`: size a domain by a metric. The samples of the sensor series `metric` from the last
 * `sample_period` seconds are reduced with `sample_function` (average, max or min); above
 * `scale_up_threshold` the target grows by `scale_up_n`, below `scale_down_threshold` it shrinks by
 * `scale_down_n`, always within [`minimum`, `maximum`]. After a scaling action no other one is taken
 * for `cooldown_period` seconds, so the new capacity shows in the metric before it is judged again.
 *
 * Per-instance samples (from heartbeats) count only while their instance counts: the load of a
 * terminated worker says nothing about the domain now. As in the other engines, failed and unhealthy
 * instances are replaced right away, cooldown or not: replacing keeps the size, it does not scale.
 */
import { z } from 'zod';
import {
  actionsFor,
  census,
  checkConf,
  confObject,
  clamp,
  finiteNumber,
  nonEmptyString,
  pickVictims,
  seconds,
  wholeNumber,
  type ConfCheck,
  type Decision,
  type Engine,
  type EngineInput,
  type LaunchAction,
  type SensorSample,
} from './engine.js';

export type SampleFunction = 'average' | 'max' | 'min';

/** CloudWatch's default statistic period, which the original sensor engine read its metrics from. */
const DEFAULT_SAMPLE_PERIOD_S = 60;

const schema = confObject({
  metric: nonEmptyString(),
  sample_function: z.enum(['average', 'max', 'min'], { error: 'must be one of "average", "max", "min"' }),
  sample_period: seconds().default(DEFAULT_SAMPLE_PERIOD_S),
  scale_up_threshold: finiteNumber(),
  scale_up_n: wholeNumber(1),
  scale_down_threshold: finiteNumber(),
  scale_down_n: wholeNumber(1),
  minimum: wholeNumber(),
  maximum: wholeNumber(),
  cooldown_period: seconds().default(0),
  deployable_type: nonEmptyString(),
  site: nonEmptyString(),
}).superRefine((c, ctx) => {
  if (c.scale_down_threshold > c.scale_up_threshold) {
    ctx.addIssue({
      code: 'custom',
      path: ['scale_down_threshold'],
      message: `must not exceed scale_up_threshold (${c.scale_down_threshold} > ${c.scale_up_threshold}), or one reading would mean both`,
    });
  }
  if (c.minimum > c.maximum) {
    ctx.addIssue({ code: 'custom', path: ['minimum'], message: `must not exceed maximum (${c.minimum} > ${c.maximum})` });
  }
});

export type SensorConf = z.infer<typeof schema>;

export type SensorState = {
  /** How many instances the domain should have. */
  target: number;
  /** When the last scaling action was decided, ms since the epoch; null before the first. */
  last_scale_time: number | null;
};

function reduce(fn: SampleFunction, values: readonly number[]): number {
  // Folds rather than Math.max(...values): a long window must not overflow the call stack.
  if (fn === 'max') return values.reduce((a, b) => Math.max(a, b));
  if (fn === 'min') return values.reduce((a, b) => Math.min(a, b));
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function decide({ conf, state, instances, sensors, now }: EngineInput<SensorConf, SensorState>): Decision<SensorState> {
  const { counted, doomed } = census(instances);
  let target = clamp(state.target, conf.minimum, conf.maximum);
  let lastScale = state.last_scale_time;

  const cooling = lastScale !== null && now < lastScale + conf.cooldown_period * 1000;
  if (!cooling) {
    const countedIds = new Set(counted.map((i) => i.id));
    const from = now - conf.sample_period * 1000;
    const inWindow = (s: SensorSample): boolean =>
      s.time > from && s.time <= now && (s.instance_id === undefined || countedIds.has(s.instance_id));
    const values = (sensors[conf.metric] ?? []).filter(inWindow).map((s) => s.value);
    if (values.length > 0) {
      const reading = reduce(conf.sample_function, values);
      let wanted = target;
      if (reading > conf.scale_up_threshold) wanted = clamp(target + conf.scale_up_n, conf.minimum, conf.maximum);
      else if (reading < conf.scale_down_threshold) wanted = clamp(target - conf.scale_down_n, conf.minimum, conf.maximum);
      // Only a change starts a cooldown: a reading pinned at a bound must not delay the next real move.
      if (wanted !== target) {
        target = wanted;
        lastScale = now;
      }
    }
  }

  const launches: LaunchAction[] = [];
  const destroy = doomed.concat(pickVictims(counted, counted.length - target));
  if (counted.length < target) {
    launches.push({ type: 'launch', site: conf.site, deployable_type: conf.deployable_type, count: target - counted.length, vars: {} });
  }
  return { actions: actionsFor(destroy, launches), state: { target, last_scale_time: lastScale } };
}

export const sensorEngine: Engine<SensorConf, SensorState> = {
  name: 'sensor',
  validateConf: (conf: unknown): ConfCheck<SensorConf> => checkConf(schema, conf),
  initialState: (conf) => ({ target: conf.minimum, last_scale_time: null }),
  decide,
};
