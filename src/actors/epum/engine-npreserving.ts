/**
 * `npreserving`: keep exactly `preserve_n` instances. Instances that fail or turn unhealthy are
 * terminated and replaced; a larger `preserve_n` launches more, a smaller one terminates the
 * instances listed in `retirable_nodes` first, then the newest.
 *
 * With `unique_values`, each instance gets one of the values as the launch variable `unique_key`
 * (default "unique_value"), no two live instances the same one. A replacement takes the value of the
 * instance it replaces, so a role bound to a value (a shard, a port) comes back as itself. Instances
 * beyond the number of values are launched without the variable.
 */
import type { z } from 'zod';
import {
  actionsFor,
  census,
  checkConf,
  confObject,
  distinctStrings,
  newestFirst,
  nonEmptyString,
  pickVictims,
  wholeNumber,
  type ConfCheck,
  type Decision,
  type Engine,
  type EngineInput,
  type EngineInstance,
  type LaunchAction,
} from './engine.js';

const schema = confObject({
  preserve_n: wholeNumber(),
  deployable_type: nonEmptyString(),
  site: nonEmptyString(),
  unique_values: distinctStrings().optional(),
  unique_key: nonEmptyString().default('unique_value'),
  retirable_nodes: distinctStrings().default([]),
});

export type NpreservingConf = z.infer<typeof schema>;

/** Everything this engine needs is in the instances themselves (their vars hold the unique values). */
export type NpreservingState = Record<string, never>;

function decide({ conf, instances }: EngineInput<NpreservingConf, NpreservingState>): Decision<NpreservingState> {
  const { counted, doomed } = census(instances);
  const launches: LaunchAction[] = [];
  let destroy: EngineInstance[] = doomed;

  if (counted.length > conf.preserve_n) {
    destroy = destroy.concat(pickVictims(counted, counted.length - conf.preserve_n, conf.retirable_nodes));
  } else if (counted.length < conf.preserve_n) {
    const missing = conf.preserve_n - counted.length;
    const values = conf.unique_values ? freeValues(conf.unique_values, conf.unique_key, counted, instances) : [];
    const plain: LaunchAction = { type: 'launch', site: conf.site, deployable_type: conf.deployable_type, count: 0, vars: {} };
    for (let k = 0; k < missing; k++) {
      const value = values[k];
      if (value === undefined) plain.count++;
      else launches.push({ ...plain, count: 1, vars: { [conf.unique_key]: value } });
    }
    launches.push(plain);
  }
  return { actions: actionsFor(destroy, launches), state: {} };
}

/**
 * Unique values no counted instance holds, in the order replacements should take them: first the
 * values of instances that are gone or going (newest loss first, so the latest holder's value is
 * reused), then the rest in configured order. Values no longer configured are never handed out.
 */
function freeValues(configured: readonly string[], key: string, counted: readonly EngineInstance[], all: readonly EngineInstance[]): string[] {
  const allowed = new Set(configured);
  const held = new Set(counted.map((i) => i.vars[key]));
  const countedIds = new Set(counted.map((i) => i.id));
  const lost = all
    .filter((i) => !countedIds.has(i.id))
    .sort(newestFirst)
    .map((i) => i.vars[key]);
  const out: string[] = [];
  for (const v of [...lost, ...configured]) {
    if (v !== undefined && allowed.has(v) && !held.has(v) && !out.includes(v)) out.push(v);
  }
  return out;
}

export const npreservingEngine: Engine<NpreservingConf, NpreservingState> = {
  name: 'npreserving',
  validateConf: (conf: unknown): ConfCheck<NpreservingConf> => checkConf(schema, conf),
  initialState: () => ({}),
  decide,
};
