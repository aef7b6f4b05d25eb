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
 * Loads what a user module given with `flag` (e.g. --actors) exports as its default export (one or an
 * array) or under `exportName` (an array); every export must pass `accepts`, else the error says
 * what the module should export (`what`).
 */
export async function loadUserModule<T>(flag: string, path: string, exportName: string, accepts: (v: unknown) => v is T, what: string): Promise<T[]> {
  const file = resolve(path);
  if (!existsSync(file)) throw new InvalidArgumentError(`${flag} ${path}: no such file`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`${flag} ${path}: cannot load module: ${(err as Error).message}`, { cause: err });
  }
  const candidates = [mod.default, mod[exportName]].flatMap((v) => (Array.isArray(v) ? v : v === undefined ? [] : [v]));
  const found = candidates.filter(accepts);
  if (found.length === 0 || found.length !== candidates.length) {
    throw new InvalidArgumentError(`${flag} ${path}: export ${what} as default or as "${exportName}"`);
  }
  return found;
}

/**
 * Loads actor types from a user module given with --actors. The module exports them as its default
 * export (one type or an array) or as a named export `actorTypes` (an array).
 */
export function loadActorModule(path: string): Promise<ActorType[]> {
  return loadUserModule('--actors', path, 'actorTypes', isActorType, 'actor types (objects with name, initialState and handle)');
}
