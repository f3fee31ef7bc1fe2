import { type Kysely, sql } from 'kysely';
import type { Engine } from '../engine.js';

export const name = '0010_request_search';

/** How much of a body is searched (characters). Part of the index definitions below: never change it here. */
export const SEARCH_BODY_CHARS = 100_000;

/**
 * PostgreSQL's search document of a request. The index is on this expression, and a query uses the index only
 * when it repeats it exactly: store/request-search.ts imports it from here.
 */
export const PG_SEARCH_DOCUMENT = `to_tsvector('simple'::regconfig, coalesce(subject, '') || ' ' ||
  coalesce(requester_name, '') || ' ' || coalesce(requester_address, '') || ' ' ||
  left(coalesce(text_body, ''), ${SEARCH_BODY_CHARS}))`;

/**
 * Full-text search over requests: subject, requester name and address, and the first mail's text body (its
 * first SEARCH_BODY_CHARS characters: a 95 MB body is taken in whole, but PostgreSQL refuses a tsvector over
 * 1 MB, and nobody searches for the millionth word).
 *
 * PostgreSQL: a GIN index on a tsvector expression ('simple' configuration: mail comes in every language).
 * The database computes it on every insert and update, so it can never be out of step, and creating the index
 * fills it for the rows already there. An expression rather than a stored column: `selectAll('requests')` would
 * otherwise carry a large tsvector out with every row.
 *
 * SQLite: a contentless FTS5 table (contentless_delete=1: rows can be replaced) whose rowid is the request id,
 * kept in step by triggers on requests. Triggers rather than a call in the intake commit: every writer of
 * requests (intake, a future edit, a bench loading rows directly) is covered, in the writer's own transaction,
 * with no code path that can forget it. Contentless, because the text is in requests already: a second copy of
 * every body would double the database.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  if (engine === 'postgres') {
    await sql`create index requests_search on requests using gin (${sql.raw(PG_SEARCH_DOCUMENT)})`.execute(
      db,
    );
    return;
  }
  await sql`create virtual table request_search using fts5(
    subject, requester, body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
  )`.execute(db);
  const doc = (r: string) =>
    sql.raw(`${r}.id, ${r}.subject, coalesce(${r}.requester_name, '') || ' ' || coalesce(${r}.requester_address, ''),
      substr(coalesce(${r}.text_body, ''), 1, ${SEARCH_BODY_CHARS})`);
  await sql`create trigger request_search_insert after insert on requests begin
    insert into request_search (rowid, subject, requester, body) values (${doc('new')});
  end`.execute(db);
  await sql`create trigger request_search_update
    after update of subject, requester_name, requester_address, text_body on requests begin
    delete from request_search where rowid = old.id;
    insert into request_search (rowid, subject, requester, body) values (${doc('new')});
  end`.execute(db);
  await sql`create trigger request_search_delete after delete on requests begin
    delete from request_search where rowid = old.id;
  end`.execute(db);
  // the rows already there, in one statement (a single commit)
  await sql`insert into request_search (rowid, subject, requester, body) select ${doc('requests')} from requests`.execute(
    db,
  );
}
