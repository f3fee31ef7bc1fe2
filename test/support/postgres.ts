import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';

/**
 * A real PostgreSQL for the storage tests. CI machines run one on 127.0.0.1:5432 (trust auth); when none
 * answers, the test run starts the installed cluster, or installs Debian's package and starts it.
 * MAILINTAKE_TEST_PG_URL points elsewhere (an admin connection that may CREATE DATABASE).
 */
export const ADMIN_URL = process.env.MAILINTAKE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function reachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function run(cmd: string, args: string[]): void {
  console.log(`[test setup] ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export async function ensurePostgres(): Promise<void> {
  if (await reachable()) return;
  if (process.env.MAILINTAKE_TEST_PG_URL) {
    throw new Error(`MAILINTAKE_TEST_PG_URL=${ADMIN_URL} does not answer`);
  }
  if (!fs.existsSync('/usr/bin/pg_ctlcluster')) {
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'postgresql']);
  }
  const versions = fs.readdirSync('/etc/postgresql');
  for (const v of versions) {
    try {
      run('pg_ctlcluster', ['--skip-systemctl-redirect', v, 'main', 'start']);
    } catch {
      // already running or another version; the reachability check below decides
    }
  }
  // A freshly installed cluster asks for peer auth over the socket; allow trust on loopback for tests only.
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await reachable()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('PostgreSQL could not be started for the tests (see the lines above)');
}

/** A new empty database for one test file; `drop()` removes it. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `mailintake_test_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        // Connections of pools that were just ended may still be saying goodbye: a forced drop would terminate
        // them mid-way, and pg reports that as an uncaught error in the test process. Wait (bounded) until the
        // server has let them go; `force` only removes what a test really left open.
        const deadline = Date.now() + 5_000;
        for (;;) {
          const { rows } = await c.query<{ n: string }>(
            'select count(*) as n from pg_stat_activity where datname = $1',
            [name],
          );
          if (Number(rows[0]?.n ?? 0) === 0 || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 25));
        }
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
