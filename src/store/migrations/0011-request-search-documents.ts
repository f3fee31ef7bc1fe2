import { type Kysely, sql } from 'kysely';
import type { Engine } from '../engine.js';
import { HTML_READ_CHARS, htmlSearchText, requesterNorm } from '../search-text.js';
import { addIndex, inSlices } from './shared.js';

export const name = '0011_request_search_documents';

/**
 * The search document of a request, on both engines: its subject, requester, the first BODY_CHARS of its body
 * (the text body, or for an HTML-only mail the HTML's text, `html_text`), then its newest CONVERSATIONS
 * conversations, newest first, each with its sender, subject and first CONVERSATION_CHARS of body; the whole
 * cut at DOCUMENT_CHARS. Part of the SQL below: never change them here (a later migration can).
 *
 * Why caps: PostgreSQL refuses a tsvector over 1 MB, and a refused document would fail the mail's commit round
 * after round. Each character of text makes at most ~6 bytes of tsvector (a one-character word of a 3-byte
 * script, a space, 4 bytes of entry and 2+2 of position; to_tsvector builds the positions before strip()
 * drops them): 150,000 characters stay under 0.9 MB whatever a sender writes. The newest conversations first: a reply quotes what came before, and a thread's latest words
 * are the likeliest searched.
 */
export const BODY_CHARS = 50_000;
export const CONVERSATION_CHARS = 20_000;
export const CONVERSATIONS = 20;
export const DOCUMENT_CHARS = 150_000;

/**
 * Migration 0010 searched a request's first mail alone (its text body), through an index on an expression on
 * PostgreSQL. This one searches conversations and HTML-only bodies too, and keeps the document stored:
 *
 * - PostgreSQL: a table request_search (request_id, document tsvector) with a GIN index, filled by triggers
 *   on requests and conversations. Stored, because the expression index made every match recheck and count
 *   recompute to_tsvector of the whole body (1.8 s per common-word search at 100,000 requests); a table of its
 *   own rather than a column of requests, because requests' rows are read whole (`selectAll`) by the request
 *   pages and a tsvector would travel with each.
 * - SQLite: the contentless FTS5 table request_search is rebuilt with a fourth column, conversations; a
 *   conversation's insert rewrites its request's row (delete + insert: FTS5 has no partial update). One row per
 *   request rather than one per conversation: every word of a query must occur in the request as a whole, and
 *   the list pages newest first by walking the FTS5 rowids (the request ids) down, stopping after a page.
 *
 * Triggers on both, as 0010 did: every writer of requests and conversations is covered in its own transaction.
 * What SQL cannot compute the application writes beside the mail (store/search-text.ts), and this migration
 * backfills in JavaScript: `html_text` (requests and conversations) and `requester_norm` with its index
 * (requester_norm, id), which serves the requester filter newest first.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  for (const table of ['requests', 'conversations']) {
    await db.schema.alterTable(table).addColumn('html_text', 'text').execute();
  }
  await db.schema.alterTable('requests').addColumn('requester_norm', 'text').execute();
  await backfill(db, engine);
  await addIndex(db, 'requests_requester', 'requests', ['requester_norm', 'id']);
  if (engine === 'postgres') await postgres(db);
  else await sqlite(db);
}

/** The values the application writes, for the rows already there (in slices: a large store stays bounded). */
async function backfill(db: Kysely<unknown>, engine: Engine): Promise<void> {
  type Row = {
    id: number;
    requester_address?: string | null;
    text_body: string | null;
    html_body: string | null;
  };
  for (const table of ['requests', 'conversations'] as const) {
    const extra = table === 'requests' ? sql`, requester_address` : sql``;
    await inSlices<Row>(
      async (after) =>
        // only as much of each body as htmlSearchText reads: a slice of 4 MB bodies stays ~40 MB
        (
          await sql<Row>`select id, substr(text_body, 1, 200) as text_body,
            case when text_body is null or trim(substr(text_body, 1, 200)) = ''
              then substr(html_body, 1, ${HTML_READ_CHARS}) end as html_body ${extra}
            from ${sql.table(table)} where id > ${after} order by id limit 200`.execute(db)
        ).rows,
      (r) => r.id,
      async (rows) => {
        const values = rows
          .map((r) => ({
            id: r.id,
            html: htmlSearchText(r.text_body, r.html_body),
            norm: table === 'requests' ? requesterNorm(r.requester_address) : null,
          }))
          .filter((v) => v.html !== null || v.norm !== null);
        if (values.length === 0) return;
        if (engine === 'postgres') {
          const set =
            table === 'requests' ? sql`html_text = v.html, requester_norm = v.norm` : sql`html_text = v.html`;
          await sql`update ${sql.table(table)} t set ${set}
            from (values ${sql.join(values.map((v) => sql`(${v.id}::int, ${v.html}::text, ${v.norm}::text)`))}) as v(id, html, norm)
            where t.id = v.id`.execute(db);
          return;
        }
        // one statement per slice: on SQLite each statement outside a transaction is a commit (an fsync)
        const set =
          table === 'requests' ? sql`html_text = v.html, requester_norm = v.norm` : sql`html_text = v.html`;
        await sql`with v(id, html, norm) as (values ${sql.join(values.map((v) => sql`(${v.id}, ${v.html}, ${v.norm})`))})
          update ${sql.table(table)} set ${set} from v where ${sql.table(table)}.id = v.id`.execute(db);
      },
    );
  }
}

/** The text of one mail's body for the document (`a`: an alias of requests or conversations). */
const body = (a: string, chars: number) =>
  `substr(coalesce(nullif(${a}.text_body, ''), ${a}.html_text, ''), 1, ${chars})`;

/** The subject, requester and body of the request `r`. */
const REQUEST_PARTS = {
  subject: `coalesce(r.subject, '')`,
  requester: `coalesce(r.requester_name, '') || ' ' || coalesce(r.requester_address, '')`,
  body: body('r', BODY_CHARS),
};

/** The newest conversations of the request `r`, newest first (`join` concatenates a list: the engines differ). */
const conversationsOf = (join: (expr: string) => string) => `coalesce((select ${join('c.t')} from (
    select c.id, coalesce(c.from_name, '') || ' ' || coalesce(c.from_address, '') || ' ' ||
      coalesce(c.subject, '') || ' ' || ${body('c', CONVERSATION_CHARS)} as t
    from conversations c where c.request_id = r.id order by c.id desc limit ${CONVERSATIONS}) c), '')`;

async function postgres(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists requests_search`.execute(db);
  await sql`create table request_search (
    request_id integer primary key references requests (id) on delete cascade,
    document tsvector not null
  )`.execute(db);
  const p = REQUEST_PARTS;
  // 'simple': mail comes in every language; PostgreSQL's parser leaves HTML tags out of the words. strip():
  // no word positions, since nothing searches phrases or ranks: half the bytes stored per request. PL/pgSQL,
  // not SQL: a SQL function called from a trigger is planned again at every call, a PL/pgSQL one keeps its
  // plan for the session. With both, bench (i) loaded 100,000 requests in 33 s instead of 137 s.
  await sql
    .raw(`create function request_search_document(rid integer) returns tsvector language plpgsql stable as $$
    declare
      doc tsvector;
    begin
      select strip(to_tsvector('simple'::regconfig, left(
        ${p.subject} || ' ' || ${p.requester} || ' ' || ${p.body} || ' ' ||
        ${conversationsOf((t) => `string_agg(${t}, ' ' order by c.id desc)`)}, ${DOCUMENT_CHARS})))
        into doc from requests r where r.id = rid;
      return doc;
    end
  $$`)
    .execute(db);
  for (const [fn, key] of [
    ['request_search_of_request', 'id'],
    ['request_search_of_conversation', 'request_id'],
  ] as const) {
    await sql
      .raw(`create function ${fn}() returns trigger language plpgsql as $$
      begin
        insert into request_search (request_id, document) values (new.${key}, request_search_document(new.${key}))
          on conflict (request_id) do update set document = excluded.document;
        return null;
      end
    $$`)
      .execute(db);
  }
  await sql`create trigger request_search_request
    after insert or update of subject, requester_name, requester_address, text_body, html_text on requests
    for each row execute function request_search_of_request()`.execute(db);
  await sql`create trigger request_search_conversation
    after insert or update of from_name, from_address, subject, text_body, html_text on conversations
    for each row execute function request_search_of_conversation()`.execute(db);
  await sql`insert into request_search (request_id, document)
    select id, request_search_document(id) from requests`.execute(db);
  await sql`create index request_search_document on request_search using gin (document)`.execute(db);
}

async function sqlite(db: Kysely<unknown>): Promise<void> {
  for (const t of ['request_search_insert', 'request_search_update', 'request_search_delete']) {
    await sql`drop trigger if exists ${sql.raw(t)}`.execute(db);
  }
  await sql`drop table if exists request_search`.execute(db);
  await sql`create virtual table request_search using fts5(
    subject, requester, body, conversations,
    content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
  )`.execute(db);
  const p = REQUEST_PARTS;
  // the rows of the requests `where` selects (as `r`)
  const rows = (where: string) => `insert into request_search (rowid, subject, requester, body, conversations)
    select r.id, ${p.subject}, ${p.requester}, ${p.body},
      substr(${conversationsOf((t) => `group_concat(${t}, ' ')`)}, 1, ${DOCUMENT_CHARS})
    from requests r ${where}`;
  const refresh = (key: string) =>
    sql.raw(`delete from request_search where rowid = ${key}; ${rows(`where r.id = ${key}`)};`);
  // a new request has no row to delete yet
  await sql`create trigger request_search_insert after insert on requests begin
    ${sql.raw(`${rows('where r.id = new.id')};`)}
  end`.execute(db);
  await sql`create trigger request_search_update
    after update of subject, requester_name, requester_address, text_body, html_text on requests begin
    ${refresh('new.id')}
  end`.execute(db);
  await sql`create trigger request_search_delete after delete on requests begin
    delete from request_search where rowid = old.id;
  end`.execute(db);
  await sql`create trigger request_search_conversation_insert after insert on conversations begin
    ${refresh('new.request_id')}
  end`.execute(db);
  await sql`create trigger request_search_conversation_update
    after update of from_name, from_address, subject, text_body, html_text on conversations begin
    ${refresh('new.request_id')}
  end`.execute(db);
  await sql.raw(rows('')).execute(db);
}
