/**
 * A PostgreSQL cluster of a test's own, for tests that stop, restart or cut off the database: the machine's
 * PostgreSQL (and the other test files using it) must never see that. initdb in a temp dir, a free loopback
 * port, fsync off (a throwaway cluster needs no durability, and the machine is shared), trust auth for the
 * `postgres` user. As root (CI), initdb and the server refuse to run, so they run as the `postgres` account
 * the Debian package creates.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;
const RUN_AS = 'postgres';

export interface OwnPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  adminUrl: string;
  port: number;
  /** A new empty database on this cluster. */
  createDatabase(name: string): Promise<string>;
  /** `pg_ctl stop -m fast`: every backend is told 57P01 admin_shutdown, then the port refuses connections. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /**
   * pg_terminate_backend on every client backend of `database` except our own (or only those whose current or
   * last statement contains `running`); resolves with how many.
   */
  terminateBackends(database: string, running?: string): Promise<number>;
  /** Stops the server however it is (immediate) and removes the directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory; installs Debian's package when none is (root only). */
function binDir(): string {
  const find = () => {
    const root = '/usr/lib/postgresql';
    if (!fs.existsSync(root)) return null;
    const versions = fs
      .readdirSync(root)
      .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    return versions[0] ? path.join(root, versions[0], 'bin') : null;
  };
  let dir = find();
  if (!dir && isRoot()) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'postgresql'], {
      stdio: 'inherit',
      env,
    });
    dir = find();
  }
  if (!dir)
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)',
    );
  return dir;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Every started cluster, so that a test process that ends without teardown still does not leave one running. */
const live = new Set<string>();
process.once('exit', () => {
  for (const pidFile of live) {
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
  }
});

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = binDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailintake-own-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  const port = await freePort();
  // As root, the cluster belongs to the postgres account: the temp dir must be theirs, and /tmp's mkdtemp is 0700
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', RUN_AS]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', RUN_AS]).toString().trim());
    fs.chownSync(dir, uid, gid);
  }
  const as = async (cmd: string, args: string[]) => {
    const file = path.join(bin, cmd);
    try {
      if (isRoot()) await run('runuser', ['-u', RUN_AS, '--', file, ...args], { cwd: dir });
      else await run(file, args, { cwd: dir });
    } catch (err) {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : '';
      throw new Error(`${cmd} ${args.join(' ')} failed: ${String(err)}\n${tail}`);
    }
  };
  await as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    '-c full_page_writes=off',
    '-c max_connections=50',
  ].join(' ');
  const pidFile = path.join(data, 'postmaster.pid');
  const start = async () => {
    await as('pg_ctl', ['-D', data, '-l', log, '-o', options, '-w', '-t', '120', 'start']);
    live.add(pidFile);
  };
  await start();
  // A test worker killed by a signal (a timeout, ^C) runs no 'exit' handler: a detached watchdog shell takes the
  // cluster down (SIGQUIT: immediate shutdown) and removes its directory once this process is gone.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -QUIT "$(head -n 1 "$2" 2>/dev/null)" 2>/dev/null; sleep 2; rm -rf "$3"',
      'own-postgres-watchdog',
      String(process.pid),
      pidFile,
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: adminUrl });
    // this connection is ours; a restart racing with it must not throw from an unhandled 'error' event
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  let destroyed = false;
  return {
    adminUrl,
    port,
    createDatabase: async (name) => {
      await admin((c) => c.query(`create database ${name}`));
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop: () => as('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '120', 'stop']),
    start,
    // -l again: without it the restarted server writes to pg_ctl's stdout, a pipe that then never closes
    restart: () =>
      as('pg_ctl', ['-D', data, '-l', log, '-o', options, '-m', 'fast', '-w', '-t', '120', 'restart']),
    terminateBackends: (database, running) =>
      admin(async (c) => {
        const { rows } = await c.query<{ ok: boolean }>(
          `select pg_terminate_backend(pid) as ok from pg_stat_activity
            where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'
              and ($2::text is null or query like '%' || $2 || '%')`,
          [database, running ?? null],
        );
        return rows.filter((r) => r.ok).length;
      }),
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      try {
        if (fs.existsSync(pidFile)) await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not running
      }
      live.delete(pidFile);
      if (watchdog.pid) {
        try {
          process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
