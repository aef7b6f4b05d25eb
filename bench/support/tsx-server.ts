import { PACKAGE_ROOT } from './cei-node.js';
import { startReadyChild, type ReadyChild } from './ready-child.js';

/**
 * Starts one of the bench's own TypeScript servers, `script`, with `args` (through tsx, which only
 * hooks module loading) in the package root, and resolves once it prints `ready <address>`:
 * `match[1]` is the address.
 */
export function startTsxServer(script: string, name: string, args: string[] = []): Promise<ReadyChild> {
  const tsx = import.meta.resolve('tsx');
  return startReadyChild(process.execPath, ['--import', tsx, script, ...args], { ready: /^ready (\S+)$/, deadlineMs: 20_000, name, cwd: PACKAGE_ROOT });
}
