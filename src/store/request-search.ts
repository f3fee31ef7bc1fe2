import { type RawBuilder, sql } from 'kysely';
import type { Engine } from './engine.js';

/**
 * Full-text search of requests (migration 0011 builds the documents; triggers keep them in step).
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
 * The search of `q` over request_search (migration 0011: one document per request, its conversations included),
 * or null when no word of `q` can match anything. `key` is request_search's column holding the request id; the
 * list joins it to requests and adds `condition`.
 *
 * SQLite orders a search by request_search.rowid, so that FTS5 yields matches newest first and the page stops
 * after `limit` of them (as an `id in (...)` condition every match was collected first, and a word found in most
 * requests cost a full pass per page). PostgreSQL orders by requests.id: with the document stored, its planner
 * either walks the ids down checking each document (a common word: a page is found within a few hundred rows)
 * or takes the GIN index's matches and sorts them (a rare word), by its statistics of the documents' words.
 */
export function requestSearch(
  engine: Engine,
  q: string,
): { key: 'rowid' | 'request_id'; condition: RawBuilder<boolean> } | null {
  const terms = searchTerms(q);
  if (terms.length === 0) return null;
  if (engine === 'postgres') {
    return {
      key: 'request_id',
      condition: sql<boolean>`request_search.document @@ plainto_tsquery('simple'::regconfig, ${terms.join(' ')})`,
    };
  }
  return { key: 'rowid', condition: sql<boolean>`request_search match ${fts5Query(terms)}` };
}
