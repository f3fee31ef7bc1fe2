import { type Kysely, sql } from 'kysely';
import type { Engine } from '../engine.js';
import { valueKey } from '../keys.js';
import { addIndex, inSlices, required } from './shared.js';

export const name = '0007_store_keys';

/**
 * Mail values are never index keys as they stand (DESIGN.md guarantee 6): PostgreSQL refuses btree entries
 * over ~2.7 KB, so a sender's 3 KB Message-ID broke the commit of that mail, its error row, and so every later
 * round of the mailbox. The indexes move onto sha256 keys (store/keys.ts valueKey); the full values stay,
 * unindexed, for display and for comparing after a lookup by key. Also: the store-failure counters.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema
    .createTable('message_ids_keyed')
    .addColumn('portal_id', 'integer', (c) => c.notNull().references('portals.id'))
    .addColumn('message_key', 'text', required)
    .addColumn('message_id', 'text', required)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    // One row per Message-ID and portal: the same mail reaching two mailboxes (two rounds at once)
    // finds the first one's row here (see intake/commit-mail.ts lockIdentities).
    .addPrimaryKeyConstraint('message_ids_key_pk', ['portal_id', 'message_key'])
    .execute();
  await db.schema.alterTable('intake_log').addColumn('message_key', 'text').execute();
  if (engine === 'postgres') await backfillKeysInPostgres(db);
  else await backfillKeysInSqlite(db);
  await db.schema.dropTable('message_ids').execute();
  await db.schema.alterTable('message_ids_keyed').renameTo('message_ids').execute();
  await db.schema.dropIndex('intake_log_fallback').execute();
  await db.schema.dropIndex('intake_log_message_id').execute();
  // content_hash and fingerprint are our own sha256 hex: fixed length, safe as keys.
  await addIndex(db, 'intake_log_content', 'intake_log', ['mailbox_id', 'content_hash']);
  // A store that keeps failing (a full disk) is counted and alerted like a failing connection.
  await db.schema
    .alterTable('mailboxes')
    .addColumn('store_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('mailboxes')
    .addColumn('store_alerted', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await addIndex(db, 'intake_log_message_key', 'intake_log', ['message_key', 'fingerprint']);
}

/** PostgreSQL computes the same key as valueKey (sha256 of the UTF-8 bytes, hex) in SQL, in one pass. */
async function backfillKeysInPostgres(db: Kysely<unknown>): Promise<void> {
  const pgKey = (column: string) => sql`encode(sha256(convert_to(${sql.ref(column)}, 'UTF8')), 'hex')`;
  await sql`insert into message_ids_keyed (portal_id, message_key, message_id, request_id)
    select portal_id, ${pgKey('message_id')}, message_id, request_id from message_ids`.execute(db);
  await sql`update intake_log set message_key = ${pgKey('message_id')} where message_id is not null`.execute(
    db,
  );
}

/** SQLite has no sha256 of its own; it runs in-process, so the rows go through valueKey here in slices. */
async function backfillKeysInSqlite(db: Kysely<unknown>): Promise<void> {
  type MessageIdRow = { rowid: number; portal_id: number; message_id: string; request_id: number };
  await inSlices(
    async (after) =>
      (
        await sql<MessageIdRow>`select rowid, portal_id, message_id, request_id from message_ids where rowid > ${after} order by rowid limit 1000`.execute(
          db,
        )
      ).rows,
    (row) => row.rowid,
    async (rows) => {
      await sql`insert into message_ids_keyed (portal_id, message_key, message_id, request_id) values ${sql.join(
        rows.map((r) => sql`(${r.portal_id}, ${valueKey(r.message_id)}, ${r.message_id}, ${r.request_id})`),
      )}`.execute(db);
    },
  );
  type LogRow = { id: number; message_id: string };
  await inSlices(
    async (after) =>
      (
        await sql<LogRow>`select id, message_id from intake_log where id > ${after} and message_id is not null order by id limit 1000`.execute(
          db,
        )
      ).rows,
    (row) => row.id,
    async (rows) => {
      // One statement per slice: each statement outside a transaction is a commit (an fsync) on SQLite.
      await sql`with v(id, k) as (values ${sql.join(rows.map((r) => sql`(${r.id}, ${valueKey(r.message_id)})`))})
        update intake_log set message_key = (select k from v where v.id = intake_log.id)
        where id in (select id from v)`.execute(db);
    },
  );
}
