import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/** npm run test:fuzz: the property-based bad-input suite alone (FUZZ_RUNS sets its length). */
export default defineConfig({
  ...base,
  test: { ...base.test, projects: undefined, include: ['test/fuzz/**/*.test.ts'], exclude: configDefaults.exclude },
});
