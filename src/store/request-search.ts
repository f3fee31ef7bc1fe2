import { type RawBuilder, sql } from 'kysely';
import type { Engine } from './engine.js';
import { PG_SEARCH_DOCUMENT } from './migrations/0010-request-search.js';

/**
 * Full-text search of requests (migration 0010 builds the indexes; triggers and the index keep them in step).
 *
 * A query comes from a user and is searched in hostile mail: it is never spliced into a search syntax. It is cut
 * into words at white space; a word without a letter or digit is dropped (nothing in the index could match it);
 * every other word must occur (AND). SQLite: each word is an FTS5 string, double-quoted with its quotes doubled,
 * so `NEAR(`, `*`, `-`, `:` or `"` are text, never operators. PostgreSQL: plainto_tsquery, which has no
 * operators at all.
 */

/** At most this many words of a query are used (a pasted page must not become a 10,000-term query). */
export const MAX_SEARCH_TERMS = 16;

// C0/C1 controls and NUL: PostgreSQL refuses NUL in text, and no index holds a control character.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what this removes
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

/** The words of a query that can match anything, in order (pure; see the comment at the top). */
export function searchTerms(q: string): string[] {
  return q
    .replace(CONTROLS, ' ')
    .split(/\s+/u)
    .filter((t) => /[\p{L}\p{N}]/u.test(t))
    .slice(0, MAX_SEARCH_TERMS);
}

/** The FTS5 query of some words: each one a quoted string (`"` doubled inside), all of them required. */
export function fts5Query(terms: string[]): string {
  return terms.map((t) => `"${t.replaceAll('"', '""')}"`).join(' AND ');
}

/**
 * A condition on `requests` (the table as `requests`, joins allowed): the request matches every word of `q`.
 * A query with no word that can match gives a condition nothing meets.
 */
export function requestMatches(engine: Engine, q: string): RawBuilder<boolean> {
  const terms = searchTerms(q);
  if (terms.length === 0) return sql<boolean>`1 = 0`;
  if (engine === 'postgres') {
    // the indexed expression exactly, so the GIN index serves it (its columns are requests' alone)
    const doc = sql.raw(qualified(PG_SEARCH_DOCUMENT));
    return sql<boolean>`${doc} @@ plainto_tsquery('simple'::regconfig, ${terms.join(' ')})`;
  }
  return sql<boolean>`requests.id in (select rowid from request_search where request_search match ${fts5Query(terms)})`;
}

/** The index expression with its columns named as requests' (the list query joins portals and mailboxes). */
function qualified(expression: string): string {
  return expression.replace(/\b(subject|requester_name|requester_address|text_body)\b/g, 'requests.$1');
}

/**
 * SQLite: the FTS5 query of `q`, or null when no word of it can match. A list that searches joins
 * request_search and orders by its rowid (the request id), so that FTS5 yields matches newest first and the
 * page stops after `limit` of them: as an `id in (...)` condition every match was collected first, and a word
 * found in most requests cost a full pass per page.
 */
export function sqliteMatch(q: string): string | null {
  const terms = searchTerms(q);
  return terms.length === 0 ? null : fts5Query(terms);
}
