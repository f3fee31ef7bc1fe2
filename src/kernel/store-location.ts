import path from 'node:path';

/**
 * Where the data lives, worked out from the environment without the config schema: `mailintake --help` shows it
 * and the CLI checks it before opening anything, and both must stay cheap (no zod, no database driver). env.ts
 * uses the same default, so the two cannot disagree.
 */
export const DEFAULT_DATA_DIR = './data';
/** The SQLite file under the data directory (src/store/db.ts opens this name). */
export const SQLITE_FILE = 'mailintake.sqlite';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface StoreLocation {
  /** Absolute: a relative MAILINTAKE_DATA_DIR (or the default) is resolved against the current directory. */
  dataDir: string;
  /** How the data dir was chosen, for messages: the variable's value, or that the default applied. */
  dataDirSource: string;
  engine: 'sqlite' | 'postgres';
  /** The SQLite file, or the PostgreSQL server and database (never the password). */
  database: string;
}

export function storeLocation(env: NodeJS.ProcessEnv): StoreLocation {
  const raw = env.MAILINTAKE_DATA_DIR || undefined;
  const dataDir = path.resolve(raw ?? DEFAULT_DATA_DIR);
  const dataDirSource = raw
    ? `MAILINTAKE_DATA_DIR=${raw}`
    : `MAILINTAKE_DATA_DIR not set: ${DEFAULT_DATA_DIR} in ${process.cwd()}`;
  const url = env.DATABASE_URL || undefined;
  if (!url) return { dataDir, dataDirSource, engine: 'sqlite', database: path.join(dataDir, SQLITE_FILE) };
  return { dataDir, dataDirSource, engine: 'postgres', database: describePostgres(url) };
}

/** `PostgreSQL user@host:port/db`: what an admin needs to recognise the database, without the password. */
export function describePostgres(url: string): string {
  try {
    const u = new URL(url);
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    const host = u.hostname || new URLSearchParams(u.search).get('host') || 'localhost';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)';
    return `PostgreSQL ${user}${host}${u.port ? `:${u.port}` : ''}/${db}`;
  } catch {
    return 'PostgreSQL (DATABASE_URL is not a readable URL)';
  }
}
