import { InvalidArgumentError } from '../errors.js';

/** An actor's address: `type/id`. Virtual: every ref of a known type exists. */
export interface ActorRef {
  readonly type: string;
  readonly id: string;
}

const TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
const MAX_ID_BYTES = 256;
// \x00 separates key parts in the store, so no control character may appear in an id.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** Throws InvalidArgumentError unless `ref` is a well-formed address. */
export function validateRef(ref: { type?: unknown; id?: unknown } | null | undefined, what = 'ref'): ActorRef {
  if (!ref || typeof ref !== 'object') throw new InvalidArgumentError(`${what} is required`);
  const { type, id } = ref;
  if (typeof type !== 'string' || type === '') throw new InvalidArgumentError(`${what}.type is required`);
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError(`${what}.id is required`);
  if (!TYPE_PATTERN.test(type)) {
    throw new InvalidArgumentError(`${what}.type "${type}" must match ${TYPE_PATTERN.source}`);
  }
  if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new InvalidArgumentError(`${what}.id is longer than ${MAX_ID_BYTES} bytes`);
  if (CONTROL.test(id)) throw new InvalidArgumentError(`${what}.id contains a control character`);
  return { type, id };
}

/**
 * The ref last given to refKey and its key: a tell asks for the same ref's key several times in one
 * go (the router's owner lookup, then the runtime's cell lookup), and the same string object keeps
 * the hash V8 computed for the first Map lookup. Refs are values: nothing changes one in place.
 */
let lastRef: ActorRef | undefined;
let lastKey = '';

export function refKey(ref: ActorRef): string {
  if (ref === lastRef) return lastKey;
  lastKey = `${ref.type}/${ref.id}`;
  lastRef = ref;
  return lastKey;
}

export function parseRefKey(key: string): ActorRef {
  const slash = key.indexOf('/');
  if (slash <= 0) throw new InvalidArgumentError(`"${key}" is not of the form type/id`);
  return validateRef({ type: key.slice(0, slash), id: key.slice(slash + 1) });
}
