import { defineConfig } from 'vitest/config';

/**
 * The cluster chaos rounds that still fail intermittently (docs/cluster.md, "Open problems") run only
 * under `npm run chaos`, which uses vitest.chaos.config.ts; everything else runs in `npm test` and CI.
 */
export const CHAOS_ONLY = ['test/chaos/cluster-chaos.test.ts', 'test/chaos/partition.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...CHAOS_ONLY],
    // Integration and crash tests start real node processes that compete for the 2 cores: one file at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
