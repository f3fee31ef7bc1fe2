import { type Kysely, sql, type Transaction } from 'kysely';
import type { Store } from './db.js';
import type { Database } from './schema.js';

export type Tx = Kysely<Database> | Transaction<Database>;

/**
 * Runs `fn` in one transaction on either engine.
 *
 * SQLite: `BEGIN IMMEDIATE` takes the write lock up front. A plain (deferred) BEGIN that reads first and writes
 * later fails at once with SQLITE_BUSY when another process (`serve` and a CLI `fetch --once`) committed in
 * between — busy_timeout does not help there — while IMMEDIATE waits on the busy timeout instead.
 */
export async function withTransaction<T>(store: Store, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (store.engine === 'postgres') return store.db.transaction().execute(fn);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw err;
    }
  });
}
