import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs nothing but Node; `db` (files named *.db.test.ts) runs on a real
// PostgreSQL: the embedded server, or the one DATABASE_URL names (CI runs it again on PostgreSQL 15).
export default defineConfig({
  test: {
    reporters: process.env.CI ? ['default', ['json', { outputFile: process.env.SEIGO_TEST_REPORT ?? 'reports/vitest.json' }]] : ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'console/src/**/*.test.ts'],
          exclude: ['**/*.db.test.ts', '**/node_modules/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'db',
          include: ['src/**/*.db.test.ts', 'test/**/*.db.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
