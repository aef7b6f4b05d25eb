import type { ActorType } from '../runtime/actor-type.js';
import { counter } from './counter.js';
import { dtrs } from './dtrs.js';

/** Actor types every node knows without --actors. */
export function builtinTypes(): ActorType<any>[] {
  return [counter, dtrs];
}
