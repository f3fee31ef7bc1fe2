import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/store/db.js';
import { valueKey } from '../src/store/keys.js';
import { migrateTo } from '../src/store/migrations/index.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Migration 0007_store_keys moves the Message-ID indexes onto sha256 keys. Existing rows are backfilled: on
 * PostgreSQL by SQL (sha256 of the UTF-8 bytes), on SQLite by valueKey in JS. Both must give what valueKey
 * gives the code that looks the values up afterwards, for any characters.
 */
describe.each(ENGINES)('migration 0007_store_keys on %s', (engine) => {
  it('backfills the keys of existing Message-ID rows with exactly what the lookups compute', async () => {
    const fresh = await freshConfig(engine);
    const db = new Kysely<unknown>({
      dialect:
        engine === 'postgres'
          ? new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.env.DATABASE_URL, max: 2 }) })
          : new SqliteDialect({ database: new SQLite(path.join(fresh.config.dataDir, 'mailintake.sqlite')) }),
    });
    try {
      await migrateTo(db, engine as Engine, '0004_oauth');
      const now = '2026-01-01T00:00:00.000Z';
      await sql`insert into portals (name, created_at) values ('p', ${now})`.execute(db);
      await sql`insert into mailboxes (name, portal_id, protocol, settings, secrets, created_at, updated_at)
        values ('m', 1, 'imaps', '{}', '{}', ${now}, ${now})`.execute(db);
      const ids = [
        'plain@example.test',
        'ünïcödé-中文-😀@example.test',
        `${'x'.repeat(1500)}@example.test`,
        ...Array.from({ length: 1200 }, (_, i) => `bulk-${i}@example.test`),
      ];
      for (let from = 0; from < ids.length; from += 200) {
        const slice = ids.slice(from, from + 200).map((id, j) => ({ id, n: from + j + 1 }));
        await sql`insert into requests (portal_id, subject, to_addresses, cc_addresses, status, created_at, updated_at)
          values ${sql.join(slice.map(() => sql`(1, 's', '[]', '[]', 'open', ${now}, ${now})`))}`.execute(db);
        await sql`insert into message_ids (portal_id, message_id, request_id)
          values ${sql.join(slice.map(({ id, n }) => sql`(1, ${id}, ${n})`))}`.execute(db);
        await sql`insert into intake_log (mailbox_id, server_identity, message_id, outcome, request_id, reasons, created_at, updated_at)
          values ${sql.join(slice.map(({ id, n }) => sql`(1, ${`i;${n}`}, ${id}, 'created', ${n}, '[]', ${now}, ${now})`))}`.execute(
          db,
        );
      }
      await sql`insert into intake_log (mailbox_id, server_identity, message_id, outcome, reasons, created_at, updated_at)
        values (1, 'no-id', null, 'error', '[]', ${now}, ${now})`.execute(db);

      await migrateTo(db, engine as Engine, '0007_store_keys');

      const keyed = (
        await sql<{ message_key: string; message_id: string; request_id: number }>`
          select message_key, message_id, request_id from message_ids`.execute(db)
      ).rows;
      expect(keyed).toHaveLength(ids.length);
      for (const r of keyed) {
        expect(r.message_key).toBe(valueKey(r.message_id));
        expect(r.message_id).toBe(ids[r.request_id - 1]);
      }
      const log = (
        await sql<{ message_key: string | null; message_id: string | null }>`
          select message_key, message_id from intake_log`.execute(db)
      ).rows;
      expect(log).toHaveLength(ids.length + 1);
      for (const r of log) expect(r.message_key).toBe(r.message_id === null ? null : valueKey(r.message_id));
      // The key, not the value, is unique now: a second row for the same portal and Message-ID is refused.
      await expect(
        sql`insert into message_ids (portal_id, message_key, message_id, request_id)
          values (1, ${valueKey('plain@example.test')}, 'plain@example.test', 1)`.execute(db),
      ).rejects.toThrow();
    } finally {
      await db.destroy();
      await fresh.cleanup();
    }
  });
});
