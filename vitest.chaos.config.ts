import { defineConfig } from 'vitest/config';

/** `npm run chaos [-- ROUNDS]`: every test under test/chaos/, with CEI_CHAOS_ROUNDS rounds. */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
});
