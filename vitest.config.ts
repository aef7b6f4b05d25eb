import { defineConfig } from 'vitest/config';

/**
 * `npm test` and CI: every test, the chaos files with their short round (CEI_CHAOS_ROUNDS unset: 3
 * rounds); `npm run chaos -- N` runs the chaos files alone with N rounds (vitest.chaos.config.ts).
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    // Integration and crash tests start real node processes that compete for the 2 cores: one file at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
