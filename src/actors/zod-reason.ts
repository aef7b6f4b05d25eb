import type { z } from 'zod';

/** `sites.local.args[2]` for the path ['sites', 'local', 'args', 2]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; text: string } {
  const path = [...issue.path];
  switch (issue.code) {
    case 'unrecognized_keys':
      return { path, text: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` };
    case 'invalid_key':
      // A record key that fails its own schema: the inner issue says why; the path already ends with the key.
      return { path, text: `bad name: ${issue.issues[0]?.message ?? issue.message}` };
    case 'invalid_union': {
      // A discriminated union names its allowed tags in `options` (not in zod's declared issue type).
      const options = (issue as { options?: unknown }).options;
      if (Array.isArray(options)) return { path, text: `must be one of ${options.map((o) => JSON.stringify(o)).join(', ')}` };
      return { path, text: issue.message };
    }
    case 'invalid_type':
      return { path, text: issue.message.replace(/^Invalid input: /, '') };
    default:
      return { path, text: issue.message };
  }
}

/**
 * One line naming every bad field of a zod error, each as `path: why`, so a user sees the whole of
 * what to fix at once (e.g. `definition.sites.local.slots: must be a whole number >= 1`).
 */
export function zodReason(error: z.ZodError, root = ''): string {
  return error.issues
    .map((issue) => {
      const { path, text } = describeIssue(issue);
      const where = formatPath(root ? [root, ...path] : path);
      return where ? `${where}: ${text}` : text;
    })
    .join('; ');
}
