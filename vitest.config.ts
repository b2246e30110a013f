import { defineConfig } from 'vitest/config';

// Three projects: `unit` needs nothing but Node; `db` (files named *.db.test.ts) runs on a real
// PostgreSQL: the embedded server, or the one DATABASE_URL names (CI runs it again on PostgreSQL 15);
// `process` (*.process.test.ts) starts real seigo or PostgreSQL processes and kills them, one file
// at a time so that their kills and timeouts do not crowd each other on a small machine.
export default defineConfig({
  test: {
    reporters: process.env.CI ? ['default', ['json', { outputFile: process.env.SEIGO_TEST_REPORT ?? 'reports/vitest.json' }]] : ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'console/src/**/*.test.ts'],
          exclude: ['**/*.db.test.ts', '**/*.process.test.ts', '**/node_modules/**'],
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
      {
        test: {
          name: 'process',
          include: ['src/**/*.process.test.ts', 'test/**/*.process.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
