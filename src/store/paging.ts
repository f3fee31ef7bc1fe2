import { MailintakeError } from '../kernel/errors.js';
import { MAX_PAGE } from '../kernel/limits.js';

/** A page of a list: limit (default 50, at most MAX_PAGE) and offset, each a coded INVALID_SETTINGS when bad. */
export function page(
  limit: number | undefined,
  offset: number | undefined,
): { limit: number; offset: number } {
  const l = limit ?? 50;
  const o = offset ?? 0;
  if (!Number.isInteger(l) || l < 1 || l > MAX_PAGE) {
    throw new MailintakeError('INVALID_SETTINGS', `limit must be 1 to ${MAX_PAGE}`, {
      details: { fields: [{ field: 'limit', message: `must be a whole number from 1 to ${MAX_PAGE}` }] },
    });
  }
  if (!Number.isInteger(o) || o < 0) {
    throw new MailintakeError('INVALID_SETTINGS', 'offset must be 0 or more', {
      details: { fields: [{ field: 'offset', message: 'must be a whole number, 0 or more' }] },
    });
  }
  return { limit: l, offset: o };
}

/** A filtered query counted (`select(countAll().as('n'))`): PostgreSQL counts as text, SQLite as a number. */
interface Counted {
  executeTakeFirstOrThrow(): Promise<{ n: number | string | bigint }>;
}

/** The same filtered query selecting its rows, ordered: the page is cut here. */
interface Ordered<R> {
  limit(limit: number): { offset(offset: number): { execute(): Promise<R[]> } };
}

/**
 * One page of a list and the total the filter matches (every list of the API and the CLI pages this way, on
 * both engines).
 */
export async function fetchPage<R, V>(
  query: { count: Counted; rows: Ordered<R> },
  window: { limit: number; offset: number },
  view: (row: R) => V,
): Promise<{ items: V[]; total: number; limit: number; offset: number }> {
  const total = await query.count.executeTakeFirstOrThrow();
  const rows = await query.rows.limit(window.limit).offset(window.offset).execute();
  return { items: rows.map(view), total: Number(total.n), limit: window.limit, offset: window.offset };
}
