/**
 * Placement constraints: a map from an agent property name to what the property must be.
 *
 *   "value"                 equality (string, number or boolean)
 *   ["a", "b"]              membership: the property is one of these (as in the original)
 *   { ">=": 4, "<": 16 }    numeric comparison; every operator given must hold, and a property that
 *                           is not a number fails
 *   null                    no constraint (ignored, as the original ignored None)
 *
 * A property the agent does not report fails every constraint on it.
 *
 * The shape is a flat map on purpose so that it can later become one entry of an ordered list of
 * fallback profiles (`{ profiles: [c1, c2, ...] }`, tried in order until one matches): parse and match
 * each profile with the functions here. Not built yet.
 */
import { InvalidArgumentError } from '../../errors.js';

export const COMPARISON_OPERATORS = ['>', '>=', '<', '<='] as const;
export type ComparisonOperator = (typeof COMPARISON_OPERATORS)[number];

export type Scalar = string | number | boolean;
export type Comparison = Partial<Record<ComparisonOperator, number>>;
export type ConstraintValue = Scalar | Scalar[] | Comparison | null;
export type Constraints = Record<string, ConstraintValue>;

function isScalar(v: unknown): v is Scalar {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/**
 * Checks raw constraints and returns them typed (a fresh object; the input is not kept).
 * Throws InvalidArgumentError naming the first bad key.
 */
export function parseConstraints(raw: unknown): Constraints {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidArgumentError('constraints must be an object mapping property names to values');
  const out: Constraints = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (key.trim() === '') throw new InvalidArgumentError('constraint with an empty property name');
    out[key] = parseValue(key, value);
  }
  return out;
}

function parseValue(key: string, value: unknown): ConstraintValue {
  if (value === null || isScalar(value)) return value;
  if (Array.isArray(value)) {
    if (value.length === 0) throw new InvalidArgumentError(`constraint "${key}": an empty list matches nothing`);
    for (const v of value) {
      if (!isScalar(v)) throw new InvalidArgumentError(`constraint "${key}": list members must be strings, numbers or booleans`);
    }
    return [...value] as Scalar[];
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) throw new InvalidArgumentError(`constraint "${key}": a comparison needs one of ${COMPARISON_OPERATORS.join(' ')}`);
    const cmp: Comparison = {};
    for (const [op, operand] of entries) {
      if (!(COMPARISON_OPERATORS as readonly string[]).includes(op)) {
        throw new InvalidArgumentError(`constraint "${key}": unknown operator "${op}" (expected one of ${COMPARISON_OPERATORS.join(' ')})`);
      }
      if (typeof operand !== 'number' || !Number.isFinite(operand)) {
        throw new InvalidArgumentError(`constraint "${key}": operator "${op}" needs a finite number, got ${JSON.stringify(operand)}`);
      }
      cmp[op as ComparisonOperator] = operand;
    }
    return cmp;
  }
  throw new InvalidArgumentError(`constraint "${key}": unsupported value ${JSON.stringify(value)}`);
}

/** Whether an agent's properties satisfy every constraint. */
export function matchConstraints(constraints: Constraints, properties: Readonly<Record<string, unknown>>): boolean {
  // for-in over own keys (Object.entries' keys, in its order) allocates nothing: matching calls this per agent per pick.
  for (const key in constraints) {
    if (!Object.hasOwn(constraints, key)) continue;
    const want = constraints[key]!;
    if (want === null) continue;
    const have = properties[key];
    if (have === undefined || have === null) return false;
    if (Array.isArray(want)) {
      if (!want.includes(have as Scalar)) return false;
    } else if (typeof want === 'object') {
      if (!compare(want, have)) return false;
    } else if (have !== want) {
      return false;
    }
  }
  return true;
}

function compare(cmp: Comparison, have: unknown): boolean {
  // Strings that look numeric are not coerced: an agent reports metrics as numbers, and silently
  // comparing "10" < "9" as text or as numbers would hide a misreported property.
  if (typeof have !== 'number' || Number.isNaN(have)) return false;
  if (cmp['>'] !== undefined && !(have > cmp['>'])) return false;
  if (cmp['>='] !== undefined && !(have >= cmp['>='])) return false;
  if (cmp['<'] !== undefined && !(have < cmp['<'])) return false;
  if (cmp['<='] !== undefined && !(have <= cmp['<='])) return false;
  return true;
}
