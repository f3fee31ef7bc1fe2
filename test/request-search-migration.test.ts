import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { filteredRequests } from '../src/features/requests/work.js';
import type { Engine } from '../src/store/db.js';
import { migrateTo } from '../src/store/migrations/index.js';
import type { Database } from '../src/store/schema.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Migration 0011 on a store that has requests already (taken in under 0010): the application's values
 * (requester_norm, html_text) are backfilled in slices past the first one, and every request's document is
 * rebuilt with its conversations and HTML-only body; the triggers then keep new conversations in step.
 */
describe.each(ENGINES)('migration 0011_request_search_documents on %s', (engine) => {
  it('backfills existing requests and conversations, and keeps later ones in step', async () => {
    const fresh = await freshConfig(engine);
    const db = new Kysely<Database>({
      dialect:
        engine === 'postgres'
          ? new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.env.DATABASE_URL, max: 2 }) })
          : new SqliteDialect({ database: new SQLite(path.join(fresh.config.dataDir, 'mailintake.sqlite')) }),
    });
    try {
      await migrateTo(db as Kysely<unknown>, engine as Engine, '0010_request_search');
      const now = '2026-01-01T00:00:00.000Z';
      await sql`insert into portals (name, created_at) values ('p', ${now})`.execute(db);
      // 1,200 requests: more than one backfill slice (500); every third HTML-only, each with its own requester
      const total = 1200;
      for (let from = 0; from < total; from += 200) {
        const rows = Array.from({ length: 200 }, (_, j) => {
          const n = from + j + 1;
          const html = n % 3 === 0;
          return sql`(1, ${`old ${n}`}, ${`ÖLGA${n}@EXÄMPLE.TEST`}, '[]', '[]',
            ${html ? null : `plain words ${n}`}, ${html ? `<p>markup <i>word${n}</i></p>` : null}, 'open', ${now}, ${now})`;
        });
        await sql`insert into requests (portal_id, subject, requester_address, to_addresses, cc_addresses, text_body,
          html_body, status, created_at, updated_at) values ${sql.join(rows)}`.execute(db);
      }
      await sql`insert into conversations (request_id, from_address, to_addresses, cc_addresses, subject, text_body,
          html_body, created_at)
        values (7, 'agent@example.test', '[]', '[]', 'Re: old 7', 'the pelican answer', null, ${now}),
          (8, 'agent@example.test', '[]', '[]', 'Re: old 8', null, '<b>flamingo</b> markup', ${now})`.execute(
        db,
      );

      await migrateTo(db as Kysely<unknown>, engine as Engine, '0011_request_search_documents');

      const store = { db, engine: engine as Engine, close: async () => undefined };
      const ids = async (f: Parameters<typeof filteredRequests>[1]) =>
        (await filteredRequests(store, f).rows.execute()).map((r) => r.id);
      expect(await ids({ q: 'pelican' })).toEqual([7]); // an existing conversation's text
      expect(await ids({ q: 'flamingo' })).toEqual([8]); // an existing conversation's HTML-only body
      expect(await ids({ q: 'word1200' })).toEqual([1200]); // an HTML-only body in the last slice
      expect(await ids({ q: 'markup' })).toHaveLength(total / 3 + 1);
      expect(await ids({ q: 'p' })).toEqual([]); // a tag is not a word
      expect(await ids({ requester: 'ölga1001@exämple.test' })).toEqual([1001]);
      const filled = await db
        .selectFrom('requests')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('requester_norm', 'is not', null)
        .executeTakeFirstOrThrow();
      expect(Number(filled.n)).toBe(total);

      // after the migration the triggers keep the documents in step with new conversations
      await sql`insert into conversations (request_id, from_address, to_addresses, cc_addresses, subject, text_body,
          created_at) values (1200, null, '[]', '[]', 'Re', 'a late cormorant', ${now})`.execute(db);
      expect(await ids({ q: 'cormorant word1200' })).toEqual([1200]);
      expect(await ids({ q: 'pelican' })).toEqual([7]);
    } finally {
      await db.destroy();
      await fresh.cleanup();
    }
  });
});
