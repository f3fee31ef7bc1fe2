import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Installs Dovecot when missing, finds or starts PostgreSQL, checks the corpus folder: see the file.
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Real servers and SIGKILL crash loops: generous time limits, never sleeps inside tests.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
