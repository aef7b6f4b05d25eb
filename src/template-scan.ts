/**
 * The lexical side of `${...}` templates, shared by deployable types (src/actors/dtrs-template.ts)
 * and launch plans (src/plans/resolve.ts): `${inner}` is a reference, `$${` an escaped literal `${`,
 * any other `$` literal. What `inner` may be, and what the escape becomes, is each caller's.
 */
export type TemplatePart = { text: string } | { inner: string; raw: string };

export interface ScanRules {
  /** Why `inner` is not a reference of this grammar, or undefined when it is one. */
  check(inner: string): string | undefined;
  /** What `$${` becomes in the text: a literal `${`, or the escape kept for a later pass. */
  escape: string;
}

/** Splits a template into text and references; a reason when malformed. */
export function scanTemplate(template: string, rules: ScanRules): TemplatePart[] | string {
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('$${', i)) {
      text += rules.escape;
      i += 3;
    } else if (template.startsWith('${', i)) {
      const end = template.indexOf('}', i + 2);
      if (end < 0) return `unterminated "\${" at position ${i}`;
      const inner = template.slice(i + 2, end);
      const reason = rules.check(inner);
      if (reason !== undefined) return reason;
      if (text) parts.push({ text });
      text = '';
      parts.push({ inner, raw: template.slice(i, end + 1) });
      i = end + 1;
    } else {
      text += template[i];
      i += 1;
    }
  }
  if (text) parts.push({ text });
  return parts;
}
