import type { ActorType } from '../runtime/actor-type.js';
import { counter } from './counter.js';
import { stream } from './stream.js';
import { dtrs } from './dtrs.js';
import { provisionerType } from './provisioner.js';
import type { ProvisionerOptions } from './provisioner-options.js';
import type { RoleEnv } from './role-env.js';
import { epumTypes } from './epum/epum.js';
import type { EpumOptions } from './epum/options.js';
import type { EngineRegistry } from './epum/engine.js';
import { dispatcherType } from './dispatcher/dispatcher.js';
import type { DispatcherRoleOptions } from './dispatcher/options.js';
import { eeAgentType } from './ee-agent/agent.js';
import type { EeAgentOptions } from './ee-agent/options.js';
import { haTypes } from './ha/ha.js';
import type { HaOptions } from './ha/options.js';

/** Options of the CEI roles a node hosts (each over its defaults). */
export interface RoleOptions {
  provisioner?: Partial<ProvisionerOptions>;
  epum?: Partial<EpumOptions>;
  /** The decision engines EPU management knows: the built-in ones when absent. */
  engines?: EngineRegistry;
  dispatcher?: Partial<DispatcherRoleOptions>;
  /** The execution-engine agent of a worker (slots, engine type, instance id ...). */
  eeAgent?: Partial<EeAgentOptions>;
  ha?: Partial<HaOptions>;
}

/**
 * Actor types every node knows without --actors. The roles that do I/O beyond their context (the
 * provisioner, EPU management, the dispatcher) need the node's RoleEnv and are left out without one.
 */
export function builtinTypes(env?: RoleEnv, roles: RoleOptions = {}): ActorType<any>[] {
  const types: ActorType<any>[] = [counter, dtrs, stream];
  if (env) types.push(provisionerType(env, roles.provisioner), ...epumTypes(env, roles.epum, roles.engines).types, dispatcherType(env, roles.dispatcher), ...haTypes(env, roles.ha).types);
  // Every node knows the agent type, to route to any worker's agent; it runs only on its own worker.
  if (env) types.push(eeAgentType(env, roles.eeAgent));
  return types;
}
