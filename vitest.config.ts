import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Child processes, not threads: tests spawn servers and real Postgres clients.
    pool: 'forks',
    // Two cores: at most two test files at once (vitest 4 replaced poolOptions.*.maxForks with maxWorkers).
    maxWorkers: 2,
  },
});
