/**
 * Reading a site's driver settings and a launch spec through a zod schema, so that a bad value is
 * rejected before anything starts, with one message naming every bad field.
 */
import type { z } from 'zod';
import { InvalidArgumentError } from '../errors.js';

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** `what: path: why; path: why` for every issue of a zod error. */
export function describeZodError(what: string, error: z.ZodError): string {
  const issues = error.issues.map((issue) => {
    const text =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
        : issue.message;
    const where = formatPath(issue.path);
    return where ? `${where}: ${text}` : text;
  });
  return `${what}: ${issues.join('; ')}`;
}

/**
 * Parses `value` with `schema`; throws InvalidArgumentError naming `what` and every bad field.
 * `undefined` is read as `{}`, so a site without settings gets the defaults.
 */
export function parseSettings<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new InvalidArgumentError(describeZodError(what, result.error));
  return result.data;
}
