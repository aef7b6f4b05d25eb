/**
 * `${var}` templates in deployable type strings, filled at lookup from the request's variables.
 *
 * Syntax: `${name}` where name matches VAR_NAME; `$${` is a literal `${` (so a worker argument can
 * still carry a shell-style reference); any other `$` is literal. A template is checked when the
 * deployable type is stored, so a lookup can only fail for a missing variable, never for syntax.
 */

import { scanTemplate, type ScanRules } from '../template-scan.js';

/** Variable names: what a shell accepts for an environment variable, so a var can name one. */
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Part = { text: string } | { var: string };

const RULES: ScanRules = {
  check: (name) => (VAR_NAME.test(name) ? undefined : `"\${${name}}" is not a variable name (letters, digits and _, not starting with a digit)`),
  escape: '${',
};

/** Splits a template into literal text and variable references; a reason string when malformed. */
function parse(template: string): Part[] | string {
  const parts = scanTemplate(template, RULES);
  return typeof parts === 'string' ? parts : parts.map((p) => ('text' in p ? p : { var: p.inner }));
}

/** Why `template` is malformed, or undefined when it is a valid template. */
export function templateError(template: string): string | undefined {
  const parts = parse(template);
  return typeof parts === 'string' ? parts : undefined;
}

/** The variables `template` references, in order of first use (empty for a malformed one). */
export function templateVars(template: string): string[] {
  const parts = parse(template);
  if (typeof parts === 'string') return [];
  return [...new Set(parts.flatMap((p) => ('var' in p ? [p.var] : [])))];
}

/**
 * Fills `template` from `vars`. Returns the result, or the names of the referenced variables that
 * `vars` lacks (all of them, so one error message can name every missing one). Throws only for a
 * malformed template, which stored types never hold.
 */
export function fillTemplate(template: string, vars: Readonly<Record<string, string>>): { value: string } | { missing: string[] } {
  const parts = parse(template);
  if (typeof parts === 'string') throw new Error(`malformed template: ${parts}`);
  const missing = parts.flatMap((p) => ('var' in p && !Object.hasOwn(vars, p.var) ? [p.var] : []));
  if (missing.length > 0) return { missing: [...new Set(missing)] };
  return { value: parts.map((p) => ('var' in p ? vars[p.var]! : p.text)).join('') };
}
