import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Child processes, not threads: tests spawn servers and real Postgres clients.
    pool: 'forks',
    // Two cores: at most two test files at once (vitest 4 replaced poolOptions.*.maxForks with maxWorkers).
    maxWorkers: 2,
    projects: [
      {
        // Next to the code, no Postgres: seconds (`npx vitest run --project unit`). The benchmark's pure parts
        // (report arithmetic, the floor forwarder's login parsing) too.
        extends: true,
        test: { name: 'unit', include: ['src/**/*.test.ts', 'bench/**/*.test.ts'] },
      },
      {
        // Real PostgreSQL started once for the run (test/global-setup.ts), real drivers.
        extends: true,
        test: { name: 'integration', include: ['test/**/*.test.ts'], globalSetup: ['test/global-setup.ts'] },
      },
    ],
  },
});
