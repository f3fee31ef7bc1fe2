import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteDialect,
} from 'kysely';
import pg from 'pg';
import { isMailintakeError, MailintakeError } from '../kernel/errors.js';
import {
  PG_CONNECT_TIMEOUT_MS,
  SQLITE_BUSY_TIMEOUT_MS,
  STORE_WAIT_FIRST_MS,
  STORE_WAIT_MAX_MS,
} from '../kernel/limits.js';
import { createLogger, type Logger } from '../kernel/logger.js';
import type { Engine } from './engine.js';
import { migrate } from './migrations/index.js';
import type { Database } from './schema.js';

export type { Engine } from './engine.js';

export interface Store {
  db: Kysely<Database>;
  engine: Engine;
  /** Where the data is, for messages to admins: the SQLite file, or PostgreSQL's host and database (no credentials). */
  location?: string;
  close(): Promise<void>;
}

export interface StoreConfig {
  /** PostgreSQL connection string; when absent, the embedded SQLite file under dataDir is used. */
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Where a connection the database dropped on its own is told (default: warnings on stderr). */
  logger?: Logger;
}

/** The embedded database's file name under the data directory (its WAL and shared-memory files sit beside it). */
export const SQLITE_FILE = 'mailintake.sqlite';

// PostgreSQL returns bigint (int8) as string by default; our sizes fit in a double, and both engines must give
// the same JS types for the same query.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

/** The one switch between the embedded default and PostgreSQL. Runs migrations before returning. */
export async function openStore(config: StoreConfig): Promise<Store> {
  const logger = config.logger ?? createLogger('warn');
  let db: Kysely<Database>;
  let engine: Engine;
  let location: string;
  if (config.databaseUrl) {
    engine = 'postgres';
    location = pgLocation(config.databaseUrl);
    db = new Kysely<Database>({
      dialect: coded(
        new PostgresDialect({ pool: discardingBroken(postgresPool(config.databaseUrl, logger)) }),
        location,
      ),
    });
  } else {
    engine = 'sqlite';
    // The data directory holds mail (personal data) and the secret key: only this account may enter it.
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(config.dataDir, SQLITE_FILE);
    location = file;
    let sqlite: SQLite.Database;
    try {
      createPrivately(file);
      sqlite = new SQLite(file);
    } catch (err) {
      throw storeUnavailable(err) ?? err;
    }
    // WAL lets the API read while a fetch writes; synchronous=FULL makes a commit survive power loss, which
    // the exactly-once guarantee needs (an acknowledged mail must have a durable effect).
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    // `serve` and a CLI `fetch --once` may share the file; wait for the writer instead of failing at once.
    sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    db = new Kysely<Database>({ dialect: coded(new SqliteDialect({ database: sqlite }), location) });
  }
  try {
    await migrate(db as Kysely<unknown>, engine);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    // migrate() wraps what failed; a database that is down must still read as STORE_FAILED (serve waits on it),
    // and say so: the migration is only the first thing that met it
    throw storeFailureIn(err) ?? err;
  }
  return { db, engine, location, close: () => db.destroy() };
}

function pgLocation(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL database ${u.pathname.replace(/^\//, '') || '(default)'} on ${u.host || 'localhost'}`;
  } catch {
    return 'the PostgreSQL database';
  }
}

/**
 * Opens the store like openStore, but while the database cannot be reached (PostgreSQL not started yet, being
 * restarted, its host not resolvable yet in a starting container) waits and tries again instead of failing:
 * a service started before its database, or at 3 a.m. during the database's maintenance, comes up by itself.
 * Anything else (a refused password, a missing database, a failed migration) fails at once: waiting cannot
 * fix it. `onWait` is told each failed attempt (the caller logs it); `signal` gives up.
 */
export async function openStoreWaiting(
  config: StoreConfig,
  opts: {
    signal?: AbortSignal;
    onWait: (error: MailintakeError, retryInMs: number) => void;
    maxDelayMs?: number;
  },
): Promise<Store> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await openStore(config);
    } catch (err) {
      if (!isMailintakeError(err) || err.code !== 'STORE_FAILED' || !err.retryable || opts.signal?.aborted)
        throw err;
      const delay = Math.min(STORE_WAIT_FIRST_MS * 2 ** attempt, opts.maxDelayMs ?? STORE_WAIT_MAX_MS);
      opts.onWait(err, delay);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        function done() {
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', done);
          resolve();
        }
        opts.signal?.addEventListener('abort', done, { once: true });
      });
      if (opts.signal?.aborted) throw err;
    }
  }
}

/**
 * The pool, with the listeners pg needs to not end the process. pg reports a connection the server dropped
 * (restart, pg_terminate_backend, a proxy's idle timeout, a failover) as an 'error' EVENT: on the pool for an
 * idle connection, on the client for one checked out between two queries. An 'error' event nobody listens to
 * is thrown by Node, so without these a routine database restart killed `serve`. The dropped connection is
 * discarded by the pool either way (not queryable any more); the next query opens a new one.
 */
function postgresPool(url: string, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // a database that accepts TCP but never answers (a half-dead host, a full backlog) fails the query as
    // STORE_FAILED instead of hanging the round and the lease forever
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    // a connection a firewall or proxy dropped silently is noticed by TCP keepalive instead of on first use
    keepAlive: true,
  });
  // One line per lost connection: pg reports one twice (the server's 57P01, then the socket's end)
  const reported = new WeakSet<pg.ClientBase>();
  const dropped = (err: Error, where: string, client: pg.ClientBase) => {
    if (reported.has(client)) return;
    reported.add(client);
    logger.warn('database connection lost; it is replaced on next use', {
      code: 'STORE_FAILED',
      where,
      driverCode: driverCodeOf(err) ?? null,
      error: err.message,
    });
  };
  // An idle client's error reaches the pool's listener too: the client's own listener speaks only while it is out
  const inUse = new WeakSet<pg.ClientBase>();
  pool.on('acquire', (client) => inUse.add(client));
  pool.on('release', (_err, client) => inUse.delete(client));
  pool.on('error', (err, client) => dropped(err, 'idle connection', client));
  pool.on('connect', (client) =>
    client.on('error', (err) => {
      if (inUse.has(client)) dropped(err, 'connection in use', client);
    }),
  );
  return pool;
}

/**
 * The pool as Kysely sees it, with one change: a client whose query failed because its connection is gone goes
 * back to the pool destroyed. pg reads a terminated backend's FATAL answer (57P01) before the socket's end, so
 * the client still looks usable when it is released, and the next query, whatever round it belongs to, would
 * be sent on the dead socket and fail too ("Connection terminated unexpectedly").
 */
function discardingBroken(pool: pg.Pool): PostgresPool {
  return {
    end: () => pool.end(),
    connect: async () => {
      const client = await pool.connect();
      let broken = false;
      const query = (async (text: string, values: readonly unknown[]) => {
        try {
          return await client.query(text, values as unknown[]);
        } catch (err) {
          if (storeUnavailable(err)) broken = true;
          throw err;
        }
      }) as unknown as PostgresPoolClient['query'];
      return { query, release: (destroy?: boolean) => client.release(broken || destroy === true) };
    },
  };
}

/**
 * A new SQLite file is created with mode 0600 before SQLite opens it: SQLite itself creates it 0644 (less the
 * umask), readable by every account on the host, and it holds mail and sealed credentials. SQLite gives the
 * -wal and -shm files the main file's mode, so those follow.
 */
function createPrivately(file: string): void {
  try {
    fs.closeSync(
      fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600),
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * What an admin should tighten in the data directory: it holds mail, attachments, sealed credentials and the
 * secret key, so group or other access to it (or to the SQLite files of an older install) exposes them to
 * every account on the host. One sentence per finding, naming the path and the chmod that fixes it.
 */
export function dataDirWarnings(dataDir: string): string[] {
  const out: string[] = [];
  const modeOf = (p: string) => {
    try {
      return fs.statSync(p).mode & 0o777;
    } catch {
      return null;
    }
  };
  const dir = modeOf(dataDir);
  if (dir !== null && dir & 0o077) {
    out.push(
      `the data directory ${dataDir} is open to other accounts (mode ${dir.toString(8)}): it holds mail and credentials; run: chmod 700 ${dataDir}`,
    );
  }
  for (const name of [SQLITE_FILE, `${SQLITE_FILE}-wal`, `${SQLITE_FILE}-shm`]) {
    const file = path.join(dataDir, name);
    const mode = modeOf(file);
    if (mode !== null && mode & 0o077) {
      out.push(
        `the database file ${file} is readable by other accounts (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
      );
    }
  }
  return out;
}

// ---- coding the drivers' failures -----------------------------------------------------------------------------

/**
 * PostgreSQL SQLSTATEs meaning "the database is not available right now", not "this statement is wrong":
 * class 08 connection exception (08006 connection failure…), 57P01 admin_shutdown (restart, or
 * pg_terminate_backend), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, in
 * recovery), 53 insufficient resources (disk full, out of memory, too many connections), 58 system error (I/O),
 * 40001/40P01 (serialization failure, deadlock: the transaction may simply run again).
 */
const PG_UNAVAILABLE = /^(08...|57P0[123]|53...|58...|40001|40P01)$/;
/** The socket's errors while reaching or talking to the server. */
const SOCKET_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/**
 * pg's own words for a connection that ended under a query (it gives these no code). A query on a client whose
 * connection died says "not queryable"; one the pool could not open in time, "connection timeout".
 */
const PG_UNAVAILABLE_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|timeout exceeded when trying to connect)/;
/**
 * SQLite result codes of a database that cannot be written right now, whatever the statement: busy or locked
 * beyond the busy timeout, I/O error, disk full, cannot open, read-only file, out of memory. Retried next round.
 * A corrupt file is STORE_FAILED too, but retrying cannot mend it.
 */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|NOMEM|PROTOCOL)(_|$)/;
const SQLITE_BROKEN = /^SQLITE_(CORRUPT|NOTADB)(_|$)/;

function driverCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * What a driver code means for the admin, with the place it concerns (the SQLite file, or the PostgreSQL server
 * and database): a full disk or a failing one is fixed on that machine, not by waiting.
 */
function meaningOf(code: string | undefined, where: string): string | null {
  if (code === 'SQLITE_FULL' || code === '53100') return `the disk under ${where} is full`;
  if (code?.startsWith('SQLITE_IOERR') || code === '58030') return `${where} reported an I/O error`;
  if (code?.startsWith('SQLITE_READONLY') || code === '25006') return `${where} is read-only`;
  return null;
}

/**
 * The coded STORE_FAILED for a driver failure that says the database is unavailable (see the tables above),
 * else null: a constraint violation or a wrong statement stays what it is, for the caller to judge. The
 * message names the driver's code, and for a full, failing or read-only disk the place (`where`: the store's
 * location); it never holds the connection string. The one mapper of driver failures: the intake's commit
 * (intake/commit-mail.ts databaseError) uses it too.
 */
export function storeUnavailable(err: unknown, where = 'the database'): MailintakeError | null {
  if (isMailintakeError(err)) return err.code === 'STORE_FAILED' ? err : null;
  if (!(err instanceof Error)) return null;
  const code = driverCodeOf(err);
  let retryable = true;
  if (code && SQLITE_BROKEN.test(code)) retryable = false;
  else if (
    !(code && (PG_UNAVAILABLE.test(code) || SOCKET_UNAVAILABLE.has(code) || SQLITE_UNAVAILABLE.test(code))) &&
    !PG_UNAVAILABLE_MESSAGES.test(err.message)
  ) {
    return null;
  }
  const meaning = meaningOf(code, where);
  return new MailintakeError(
    'STORE_FAILED',
    meaning
      ? `${meaning} (${code}: ${err.message})`
      : `the database is unavailable${code ? ` (${code})` : ''}: ${err.message}`,
    {
      cause: err,
      retryable,
      details: { ...(code ? { driverCode: code } : {}), ...(meaning ? { path: where } : {}) },
    },
  );
}

/** storeUnavailable on the error or on any of its causes (a migration or a library may wrap the driver's error). */
function storeFailureIn(err: unknown): MailintakeError | null {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const found = storeUnavailable(e);
    if (found) return found;
  }
  return null;
}

/**
 * The dialect with every driver failure coded at the source: whatever runs the query (a fetch round, the lease,
 * the outbox, the API, a migration), a database that went away surfaces as a retryable STORE_FAILED rather than
 * a bare ECONNREFUSED or "Connection terminated" that would be reported as INTERNAL.
 */
function coded(dialect: Dialect, where: string): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => new CodedDriver(dialect.createDriver(), where),
  };
}

class CodedDriver implements Driver {
  /** Connections whose query methods are wrapped already (the drivers hand out the same objects again). */
  private readonly wrapped = new WeakSet<DatabaseConnection>();

  constructor(
    private readonly inner: Driver,
    private readonly where: string,
  ) {}

  private readonly rethrow = (err: unknown): never => {
    throw storeUnavailable(err, this.where) ?? err;
  };

  init(): Promise<void> {
    return this.inner.init().catch(this.rethrow);
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.inner.acquireConnection().catch(this.rethrow);
    if (!this.wrapped.has(connection)) {
      this.wrapped.add(connection);
      const executeQuery = connection.executeQuery.bind(connection);
      const streamQuery = connection.streamQuery.bind(connection);
      const rethrow = this.rethrow;
      connection.executeQuery = async (query) => {
        try {
          return await executeQuery(query);
        } catch (err) {
          return this.rethrow(err);
        }
      };
      connection.streamQuery = async function* (query, chunkSize) {
        try {
          yield* streamQuery(query, chunkSize);
        } catch (err) {
          rethrow(err);
        }
      };
    }
    return connection;
  }

  beginTransaction: Driver['beginTransaction'] = (c, s) =>
    this.inner.beginTransaction(c, s).catch(this.rethrow);
  commitTransaction: Driver['commitTransaction'] = (c) => this.inner.commitTransaction(c).catch(this.rethrow);
  rollbackTransaction: Driver['rollbackTransaction'] = (c) =>
    this.inner.rollbackTransaction(c).catch(this.rethrow);
  savepoint: NonNullable<Driver['savepoint']> = async (c, name, compile) => {
    if (!this.inner.savepoint) throw new Error('savepoints are not supported by this driver');
    return this.inner.savepoint(c, name, compile).catch(this.rethrow);
  };
  rollbackToSavepoint: NonNullable<Driver['rollbackToSavepoint']> = async (c, name, compile) => {
    if (!this.inner.rollbackToSavepoint) throw new Error('savepoints are not supported by this driver');
    return this.inner.rollbackToSavepoint(c, name, compile).catch(this.rethrow);
  };
  releaseSavepoint: NonNullable<Driver['releaseSavepoint']> = async (c, name, compile) => {
    if (!this.inner.releaseSavepoint) throw new Error('savepoints are not supported by this driver');
    return this.inner.releaseSavepoint(c, name, compile).catch(this.rethrow);
  };
  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

export function nowIso(): string {
  return new Date().toISOString();
}
