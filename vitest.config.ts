import { configDefaults, defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

/**
 * Suites that judge the service by its timing (answer and recovery times within the request
 * deadline under a fault; load shedding under a CPU-heavy load): they run after the rest, each
 * alone, so that a CPU-heavy suite beside them (the TypeScript compiler of the typed-client
 * test, Chromium, or another of these) cannot starve the service they measure. Run beside
 * those, a create after a fault waited past the 2 s deadline for CPU, not for the database.
 */
const TIMING_SUITES = [
  'test/database-faults.test.ts',
  'test/shutdown-database-down.test.ts',
  'test/load-shedding.test.ts',
  'test/fair-share.test.ts',
  'test/database-states.test.ts',
  'test/database-failover.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'suites',
          include: ['test/**/*.test.ts'],
          // The property-based bad-input suite has its own command (npm run test:fuzz) and CI step.
          exclude: [...configDefaults.exclude, 'test/fuzz/**', ...TIMING_SUITES],
        },
      },
      // One group per suite: the groups run one after another, after the suites above.
      ...TIMING_SUITES.map((file, index): TestProjectInlineConfiguration => ({
        extends: true,
        test: { name: `timing ${index + 1}`, include: [file], sequence: { groupOrder: index + 1 } },
      })),
    ],
  },
});
