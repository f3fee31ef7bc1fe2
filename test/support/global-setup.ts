/**
 * vitest globalSetup: runs once before all test files. Each part is a small function from its own module, so
 * this file only lists what the test run needs from the machine.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureChromiumInstalled } from './browser.js';
import { ensureDovecotInstalled } from './dovecot.js';
import { ADMIN_URL, ensurePostgres } from './postgres.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function checkCorpus(): void {
  const corpus = path.resolve(repoRoot, process.env.MAILINTAKE_CORPUS ?? '../shared/corpus');
  if (existsSync(corpus)) {
    console.log(`[setup] mail corpus: ${corpus}`);
  } else {
    console.log(
      `[setup] mail corpus NOT FOUND at ${corpus}: tests that read real .eml fixtures will fail; ` +
        'set MAILINTAKE_CORPUS to the corpus folder',
    );
  }
}

export default async function setup(): Promise<void> {
  await ensureDovecotInstalled((line) => console.log(line));
  // the console's journeys run in Debian's Chromium (test/support/browser.ts)
  await ensureChromiumInstalled((line) => console.log(line));
  await ensurePostgres();
  console.log(`[setup] PostgreSQL: ${ADMIN_URL.replace(/\/\/[^@/]*@/, '//')}`);
  checkCorpus();
}
