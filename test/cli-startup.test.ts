import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `mailintake --help` took 1.5-2 s because every library was imported up front. The check here is structural,
 * not a timing: a module loader hook records every module the process loads, and cheap invocations must not
 * load a heavy library or the runtime. A command that opens the store is the control: the same hook must see
 * the libraries there, or the check proves nothing.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'mailintake.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'mailintake-startup-'));
const hooks = path.join(dir, 'hooks.mjs');
const register = path.join(dir, 'register.mjs');
writeFileSync(
  hooks,
  `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.MAILINTAKE_TEST_LOADED, url + '\\n');
  return next(url, context);
}
`,
);
writeFileSync(
  register,
  `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAVY = [
  'imapflow',
  'mailparser',
  'kysely',
  'pg',
  'hono',
  '@hono/node-server',
  'better-sqlite3',
  'zod',
  'nodemailer',
  'openid-client',
  'fast-xml-parser',
  'file-type',
  '@ewsjs/ntlm-client',
];
/**
 * Our own modules that pull those in: the composition, the store, the features' services, repositories and
 * routes, the HTTP API. (A feature's commands.ts is the light part the CLI loads for --help.)
 */
const HEAVY_OWN = [
  /\/dist\/app\/compose\.js$/,
  /\/dist\/store\//,
  /\/dist\/features\/[^/]+\/(service|repo|routes|tokens)\.js$/,
  /\/dist\/http\//,
  /\/dist\/kernel\/env\.js$/,
];

let n = 0;
function loadedBy(args: string[]): { status: number | null; stdout: string; modules: string[] } {
  const log = path.join(dir, `loaded-${n++}.txt`);
  writeFileSync(log, '');
  const r = spawnSync(process.execPath, ['--import', register, bin, ...args], {
    env: { ...process.env, MAILINTAKE_TEST_LOADED: log, MAILINTAKE_DATA_DIR: path.join(dir, 'data') },
    encoding: 'utf8',
  });
  return {
    status: r.status,
    stdout: r.stdout,
    modules: readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

function heavyIn(modules: string[]): string[] {
  return modules.filter(
    (url) => HEAVY.some((pkg) => url.includes(`/node_modules/${pkg}/`)) || HEAVY_OWN.some((m) => m.test(url)),
  );
}

describe('cheap invocations load no heavy module', () => {
  it.each([
    [['--help']],
    [['help']],
    [['mailbox', '--help']],
    [['requests', 'list', '--help']],
    [['serve', '--help']],
    [['fetch', '--help']],
    [['no-such-command']],
  ])('mailintake %j', (args) => {
    const r = loadedBy(args);
    expect(r.status).toBe(args[0] === 'no-such-command' ? 2 : 0);
    // the hook did run: the CLI itself was recorded
    expect(r.modules.some((u) => u.endsWith('/dist/cli/program.js'))).toBe(true);
    expect(heavyIn(r.modules)).toEqual([]);
  });

  it('the same hook sees the libraries when a command opens the store (the control)', () => {
    const r = loadedBy(['portal', 'add', 'startup-control']);
    expect(r.status).toBe(0);
    const seen = heavyIn(r.modules).join('\n');
    for (const m of ['/node_modules/kysely/', '/node_modules/zod/', '/dist/app/compose.js', '/dist/store/']) {
      expect(seen).toContain(m);
    }
  });
});

describe('--help says where the data is', () => {
  it('names the resolved data directory and the SQLite file, or PostgreSQL without the password', () => {
    const sqlite = loadedBy(['--help']);
    expect(sqlite.stdout).toContain(`Data directory: ${path.join(dir, 'data')}`);
    expect(sqlite.stdout).toContain(`Database: ${path.join(dir, 'data', 'mailintake.sqlite')}`);
    const r = spawnSync(process.execPath, [bin, '--help'], {
      env: {
        ...process.env,
        MAILINTAKE_DATA_DIR: 'rel/dir',
        DATABASE_URL: 'postgres://alice:s3cr3t-pw@db.example.net:6543/tickets',
      },
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.stdout).toContain(
      `Data directory: ${path.join(dir, 'rel', 'dir')} (MAILINTAKE_DATA_DIR=rel/dir)`,
    );
    expect(r.stdout).toContain('Database: PostgreSQL alice@db.example.net:6543/tickets');
    expect(r.stdout).not.toContain('s3cr3t-pw');
  });
});
