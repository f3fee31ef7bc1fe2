import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { migrate } from './migrations.js';
import type { Database } from './schema.js';

export type Engine = 'sqlite' | 'postgres';

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
}

// PostgreSQL returns bigint (int8) as string by default; our sizes fit in a double, and both engines must give
// the same JS types for the same query.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

/** The one switch between the embedded default and PostgreSQL. Runs migrations before returning. */
export async function openStore(config: StoreConfig): Promise<Store> {
  let db: Kysely<Database>;
  let engine: Engine;
  let location: string;
  if (config.databaseUrl) {
    engine = 'postgres';
    location = pgLocation(config.databaseUrl);
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    engine = 'sqlite';
    // The data directory holds mail (personal data) and the secret key: only this account may enter it.
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(config.dataDir, 'mailintake.sqlite');
    location = file;
    const sqlite = new SQLite(file);
    // WAL lets the API read while a fetch writes; synchronous=FULL makes a commit survive power loss, which
    // the exactly-once guarantee needs (an acknowledged mail must have a durable effect).
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    // `serve` and a CLI `fetch --once` may share the file; wait for the writer instead of failing at once.
    sqlite.pragma('busy_timeout = 10000');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  }
  try {
    await migrate(db as Kysely<unknown>, engine);
  } catch (err) {
    await db.destroy();
    throw err;
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

export function nowIso(): string {
  return new Date().toISOString();
}
