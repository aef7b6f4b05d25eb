import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Temporary directories of one bench run, all under one root that `removeAll` deletes. Each
 * measurement takes a fresh directory so that no LevelDB sees another measurement's data.
 */
export class TempDirs {
  private root: string | undefined;
  private count = 0;

  /** A new, empty directory whose name starts with `name`. */
  make(name: string): string {
    this.root ??= mkdtempSync(join(tmpdir(), 'cei-bench-'));
    return join(this.root, `${String(++this.count).padStart(2, '0')}-${name}`);
  }

  /** Deletes every directory made so far; safe to call twice. Children using them must have exited. */
  removeAll(): void {
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = undefined;
  }
}
