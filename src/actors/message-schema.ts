/**
 * Zod pieces the actors' protocols share, so that every actor refuses a bad name, a bad ref or a
 * bad message with the same words.
 */
import { z } from 'zod';
import { validateRef } from '../runtime/ref.js';
import { InvalidArgumentError } from '../errors.js';
import { zodReason } from './zod-reason.js';

/** One rule for what users name (domains, deployable types, sites), so a name valid in one place is valid in all. */
export const ResourceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit' });

/** An actor ref as `{type, id}` or `"type/id"`; normalized to `type/id`. */
export const RefKey = z.union([z.string(), z.object({ type: z.string(), id: z.string() })]).transform((value, ctx) => {
  try {
    if (typeof value === 'string') {
      const slash = value.indexOf('/');
      const ref = validateRef(slash > 0 ? { type: value.slice(0, slash), id: value.slice(slash + 1) } : { type: value, id: '' });
      return `${ref.type}/${ref.id}`;
    }
    const ref = validateRef(value);
    return `${ref.type}/${ref.id}`;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `must be an actor ref (type/id): ${(err as Error).message}` });
    return z.NEVER;
  }
});

/** The message as the actor will see it (defaults filled), or InvalidArgumentError naming each bad field. */
export function parseMessage<Schema extends z.ZodType>(schema: Schema, message: unknown): z.output<Schema> {
  const r = schema.safeParse(message);
  if (!r.success) throw new InvalidArgumentError(zodReason(r.error));
  return r.data;
}

/** An actor type's `validate`: undefined for a good message, else why it is bad. */
export function messageValidator(schema: z.ZodType): (message: unknown) => string | undefined {
  return (message) => {
    const r = schema.safeParse(message);
    return r.success ? undefined : zodReason(r.error);
  };
}
