import { InvalidArgumentError } from '../errors.js';

/**
 * Decodes a JSON payload from a bytes field. `required` rejects an empty payload; otherwise empty
 * means undefined. Oversized payloads are rejected before they are parsed.
 */
export function decodePayload(bytes: Buffer | undefined, limit: number, what: string, required: boolean): unknown {
  if (!bytes || bytes.length === 0) {
    if (required) throw new InvalidArgumentError(`${what} is required (a JSON document)`);
    return undefined;
  }
  return decodeRequiredPayload(bytes, limit, what).value;
}

/** A required payload, with the JSON text it was parsed from. */
export function decodeRequiredPayload(bytes: Buffer | undefined, limit: number, what: string): { value: unknown; text: string } {
  if (!bytes || bytes.length === 0) throw new InvalidArgumentError(`${what} is required (a JSON document)`);
  if (bytes.length > limit) throw new InvalidArgumentError(`${what} is ${bytes.length} bytes; the limit is ${limit} bytes (--max-payload)`);
  const text = bytes.toString('utf8');
  try {
    return { value: JSON.parse(text), text };
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

export function encodePayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value ?? null));
}
