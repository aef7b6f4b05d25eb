import type { ActorType } from '../runtime/actor-type.js';
import { counter } from './counter.js';
import { dtrs } from './dtrs.js';
import { provisionerType } from './provisioner.js';
import type { ProvisionerOptions } from './provisioner-options.js';
import type { RoleEnv } from './role-env.js';

/** Options of the CEI roles a node hosts (each over its defaults). */
export interface RoleOptions {
  provisioner?: Partial<ProvisionerOptions>;
}

/**
 * Actor types every node knows without --actors. The roles that do I/O beyond their context (the
 * provisioner) need the node's RoleEnv and are left out without one.
 */
export function builtinTypes(env?: RoleEnv, roles: RoleOptions = {}): ActorType<any>[] {
  const types: ActorType<any>[] = [counter, dtrs];
  if (env) types.push(provisionerType(env, roles.provisioner));
  return types;
}
