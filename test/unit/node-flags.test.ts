import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_V8_FLAGS } from '../../src/node-flags.js';

const ROOT = resolve(import.meta.dirname, '../..');

// The bin's shebang and `npm start` cannot import NODE_V8_FLAGS: they spell the flags out, and must
// not drift from it.
describe('node V8 flags', () => {
  it("are the ones the cei bin's shebang and npm start give node", () => {
    const shebang = readFileSync(resolve(ROOT, 'src/cli.ts'), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_V8_FLAGS.join(' ')}`);
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    expect(pkg.scripts.start).toBe(`node ${NODE_V8_FLAGS.join(' ')} dist/cli.js up --demo`);
  });
});
