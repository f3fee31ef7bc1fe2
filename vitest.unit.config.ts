import { defineConfig } from 'vitest/config';

// The quick tier (`npm run test:unit`): the tests that sit beside their module under src/. They start no
// server (no Dovecot, no PostgreSQL, no SMTP, no browser); SQLite in a temporary folder, in-process fakes and
// the mail corpus files are fine. The suites against real servers live in test/ and run in `npm test`.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    reporters: ['default'],
  },
});
