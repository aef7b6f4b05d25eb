#!/usr/bin/env node
// npm run chaos [-- ROUNDS]: builds, then runs every chaos test with ROUNDS rounds (default 10).
import { spawnSync } from 'node:child_process';

const rounds = process.argv[2] ?? '10';
if (!/^[1-9]\d*$/.test(rounds)) {
  console.error(`chaos: rounds must be a whole number >= 1 (got "${rounds}")`);
  process.exit(2);
}
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const run = spawnSync('npx', ['vitest', 'run', '--config', 'vitest.chaos.config.ts'], {
  stdio: 'inherit',
  env: { ...process.env, CEI_CHAOS_ROUNDS: rounds },
});
process.exit(run.status ?? 1);
