import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { ActorType } from '../runtime/actor-type.js';
import { InvalidArgumentError } from '../errors.js';

function isActorType(v: unknown): v is ActorType {
  const t = v as ActorType | undefined;
  return !!t && typeof t === 'object' && typeof t.name === 'string' && typeof t.handle === 'function' && typeof t.initialState === 'function';
}

/**
 * Loads actor types from a user module given with --actors. The module exports them as its default
 * export (one type or an array) or as a named export `actorTypes` (an array).
 */
export async function loadActorModule(path: string): Promise<ActorType[]> {
  const file = resolve(path);
  if (!existsSync(file)) throw new InvalidArgumentError(`--actors ${path}: no such file`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`--actors ${path}: cannot load module: ${(err as Error).message}`, { cause: err });
  }
  const candidates = [mod.default, mod.actorTypes].flatMap((v) => (Array.isArray(v) ? v : v === undefined ? [] : [v]));
  const types = candidates.filter(isActorType);
  if (types.length === 0 || types.length !== candidates.length) {
    throw new InvalidArgumentError(
      `--actors ${path}: export actor types (objects with name, initialState and handle) as default or as "actorTypes"`,
    );
  }
  return types;
}
