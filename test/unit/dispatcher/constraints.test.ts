import { describe, expect, it } from 'vitest';
import { CeiError } from '../../../src/errors.js';
import { matchConstraints, parseConstraints } from '../../../src/actors/dispatcher/constraints.js';

const props = { role: 'worker', hostname: 'h1', cpu_load: 0.5, free_memory_mb: 2048, os: 'linux', gpu: true };

function match(raw: unknown): boolean {
  return matchConstraints(parseConstraints(raw), props);
}

function rejection(raw: unknown): CeiError {
  try {
    parseConstraints(raw);
  } catch (err) {
    if (err instanceof CeiError) return err;
    throw err;
  }
  throw new Error('expected the constraints to be rejected');
}

describe('constraints', () => {
  it('equality on strings, numbers and booleans', () => {
    expect(match({ role: 'worker', gpu: true })).toBe(true);
    expect(match({ role: 'db' })).toBe(false);
    expect(match({ free_memory_mb: 2048 })).toBe(true);
  });

  it('membership in a list', () => {
    expect(match({ os: ['linux', 'bsd'] })).toBe(true);
    expect(match({ os: ['windows'] })).toBe(false);
  });

  it('each numeric comparison, and ranges', () => {
    expect(match({ free_memory_mb: { '>': 2047 } })).toBe(true);
    expect(match({ free_memory_mb: { '>': 2048 } })).toBe(false);
    expect(match({ free_memory_mb: { '>=': 2048 } })).toBe(true);
    expect(match({ cpu_load: { '<': 0.5 } })).toBe(false);
    expect(match({ cpu_load: { '<=': 0.5 } })).toBe(true);
    expect(match({ cpu_load: { '>=': 0.1, '<': 0.9 } })).toBe(true);
  });

  it('a comparison on a non-numeric or missing property fails', () => {
    expect(match({ hostname: { '>': 0 } })).toBe(false);
    expect(match({ disk_gb: { '>': 0 } })).toBe(false);
    expect(match({ zone: 'a' })).toBe(false);
  });

  it('null and no constraints match anything', () => {
    expect(match({ zone: null })).toBe(true);
    expect(match(undefined)).toBe(true);
  });

  it('rejects bad constraints naming the key', () => {
    expect(rejection({ cpu_load: { '~': 1 } }).message).toMatch(/"cpu_load".*unknown operator "~"/);
    expect(rejection({ cpu_load: { '<': 'high' } }).message).toMatch(/"cpu_load".*finite number/);
    expect(rejection({ '': 'x' }).message).toMatch(/empty property name/);
    expect(rejection({ os: [] }).message).toMatch(/"os"/);
    expect(rejection({ os: [{}] }).message).toMatch(/"os"/);
    expect(rejection({ mem: {} }).message).toMatch(/"mem"/);
    expect(rejection(['x']).code).toBe('INVALID_ARGUMENT');
  });
});
