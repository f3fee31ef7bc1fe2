import { sql } from 'kysely';
import { currentActor } from '../../kernel/actor.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { Address } from '../../mail/types.js';
import { nowIso, type Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import { requestSearch } from '../../store/request-search.js';
import { REQUESTER_FILTER_CHARS, requesterNorm } from '../../store/search-text.js';
import { withTransaction } from '../../store/tx.js';
import type { Page } from '../shared/page.js';
import {
  REQUEST_STATUSES,
  type RequestHistoryEntry,
  type RequestStatus,
  type RequestSummary,
} from './views.js';

/**
 * Requests at scale (issue 12 §5): the list's filters and full-text search, and the work on a request — its
 * status and assignee, each change written to request_history with who made it.
 */

/** The filters of the request list (all optional, all combined). */
export interface RequestFilter {
  portal?: string;
  mailbox?: string;
  status?: string;
  /** The requester's address, exact but case-insensitive. */
  requester?: string;
  /** Words that must all occur in the subject, the requester's name or address, or the body. */
  q?: string;
  before?: number;
}

/** The longest search query and requester filter taken (a longer one is INVALID_SETTINGS). */
export const MAX_QUERY_CHARS = 500;
const MAX_ADDRESS_CHARS = REQUESTER_FILTER_CHARS;

const bad = (field: string, message: string) =>
  new MailintakeError('INVALID_SETTINGS', `${field} ${message}`, {
    details: { fields: [{ field, message }] },
  });

export function checkStatus(status: string, field = 'status'): RequestStatus {
  if ((REQUEST_STATUSES as readonly string[]).includes(status)) return status as RequestStatus;
  throw bad(field, `must be one of ${REQUEST_STATUSES.join(', ')}`);
}

/** An assignee: an email address (users come later), or null for nobody. */
export function checkAssignee(assignee: string | null): string | null {
  if (assignee === null) return null;
  const a = assignee.trim();
  if (a.length > MAX_ADDRESS_CHARS || !/^[^\s@]+@[^\s@]+$/.test(a)) {
    throw bad('assignee', 'must be an email address (or null / --none for nobody)');
  }
  return a;
}

/** The filters' own checks (the names that must exist are checked against the store by the caller). */
export function checkFilter(f: RequestFilter): void {
  if (f.status !== undefined) checkStatus(f.status);
  if (f.requester !== undefined && (f.requester.length === 0 || f.requester.length > MAX_ADDRESS_CHARS)) {
    throw bad('requester', `must be an address of 1 to ${MAX_ADDRESS_CHARS} characters`);
  }
  if (f.q !== undefined && f.q.length > MAX_QUERY_CHARS) {
    throw bad('q', `must be at most ${MAX_QUERY_CHARS} characters`);
  }
}

const person = (address: string | null, name: string | null): Address | null =>
  address ? { address, name: name ?? '' } : null;

/**
 * A search counts its matches up to this many past the page's first (`offset + SEARCH_COUNT_CAP`; at least a
 * page, since MAX_PAGE is no more): counting every one of 30,000 matches of a common word would cost more than
 * finding the page. The page says `totalCapped` when counting stopped there (`total` is then the cap). Other
 * filters count exactly (an index serves each count).
 */
export const SEARCH_COUNT_CAP = 1000;

/** The list query: newest first, filtered; only the columns a summary shows (never the bodies). */
export function filteredRequests(store: Store, f: RequestFilter & { id?: number; ids?: number[] }) {
  const db = store.db;
  // No join: each engine then plans on requests alone (an index on the filter, or the id order for a page);
  // with portals joined, SQLite drove the query from portals and read every request of the portal.
  let base = db.selectFrom('requests');
  const search = f.q === undefined ? null : requestSearch(store.engine, f.q);
  // the search joins request_search (see requestSearch); its columns are only named in SQL, so the join keeps
  // the type of the plain query
  if (search !== null) {
    base = base.innerJoin(
      sql<{ rowid: number; request_id: number }>`request_search`.as('request_search'),
      `request_search.${search.key}`,
      'requests.id',
    ) as unknown as typeof base;
    base = base.where(search.condition);
  } else if (f.q !== undefined) {
    base = base.where(sql<boolean>`1 = 0`); // no word of the query can match anything
  }
  if (f.portal) {
    base = base.where('requests.portal_id', 'in', (eb) =>
      eb.selectFrom('portals').select('portals.id').where('portals.name', '=', f.portal!),
    );
  }
  if (f.mailbox) {
    base = base.where('requests.mailbox_id', 'in', (eb) =>
      eb.selectFrom('mailboxes').select('mailboxes.id').where('mailboxes.name', '=', f.mailbox!),
    );
  }
  if (f.status) base = base.where('requests.status', '=', f.status);
  if (f.requester) {
    // the address as intake stored it beside the request, lower-cased for every script (search-text.ts)
    const norm = requesterNorm(f.requester);
    base = norm === null ? base.where(sql<boolean>`1 = 0`) : base.where('requests.requester_norm', '=', norm);
  }
  if (f.before !== undefined) base = base.where('requests.id', '<', f.before);
  if (f.id !== undefined) base = base.where('requests.id', '=', f.id);
  if (f.ids !== undefined) base = base.where('requests.id', 'in', f.ids.length > 0 ? f.ids : [0]);
  // searching alone (paging aside), SQLite reads the matches from the FTS5 table, without a lookup per match
  const onlySearch =
    search !== null &&
    store.engine === 'sqlite' &&
    !f.portal &&
    !f.mailbox &&
    !f.status &&
    !f.requester &&
    f.ids === undefined &&
    f.id === undefined;
  const idsUpTo = (cap: number) => {
    if (onlySearch) {
      let matches = db
        .selectFrom(sql<{ rowid: number }>`request_search`.as('request_search'))
        .select(sql<number>`rowid`.as('id'))
        .where(search.condition);
      if (f.before !== undefined) matches = matches.where(sql<boolean>`rowid < ${f.before}`);
      return matches.limit(cap);
    }
    return base.select('requests.id').limit(cap);
  };
  return {
    count: base.select((eb) => eb.fn.countAll<number>().as('n')),
    /** The ids of at most `cap` matches, in no order (a search's, see listRequests). */
    idsUpTo,
    rows: base
      .select([
        'requests.id',
        'requests.subject',
        'requests.requester_address',
        'requests.requester_name',
        'requests.status',
        'requests.assignee',
        'requests.created_at',
        'requests.updated_at',
      ])
      .select((eb) =>
        eb
          .selectFrom('portals')
          .select('portals.name')
          .whereRef('portals.id', '=', 'requests.portal_id')
          .as('portal_name'),
      )
      .select((eb) =>
        eb
          .selectFrom('conversations')
          .select((e) => e.fn.countAll<number>().as('c'))
          .whereRef('conversations.request_id', '=', 'requests.id')
          .as('conversation_count'),
      )
      .orderBy(search?.key === 'rowid' ? sql`request_search.rowid` : sql`requests.id`, 'desc'),
  };
}

type SummaryRow = Awaited<ReturnType<ReturnType<typeof filteredRequests>['rows']['execute']>>[number];

export function summaryView(r: SummaryRow): RequestSummary {
  return {
    id: r.id,
    portal: r.portal_name ?? '',
    subject: r.subject,
    requester: person(r.requester_address, r.requester_name),
    status: checkStatusStored(r.status),
    assignee: r.assignee,
    conversationCount: Number(r.conversation_count ?? 0),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Migration 0009 made every stored status valid, and only checkStatus writes one. */
const checkStatusStored = (s: string): RequestStatus => s as RequestStatus;

/** The request list with every filter: a name that does not exist is NOT_FOUND (checked by `exists`). */
export async function listRequests(
  store: Store,
  q: RequestFilter & { limit?: number; offset?: number },
  exists: { portal(name: string): Promise<void>; mailbox(name: string): Promise<void> },
): Promise<Page<RequestSummary>> {
  const window = page(q.limit, q.offset);
  checkFilter(q);
  if (q.portal) await exists.portal(q.portal);
  if (q.mailbox) await exists.mailbox(q.mailbox);
  const query = filteredRequests(store, q);
  if (q.q === undefined) return { ...(await fetchPage(query, window, summaryView)), totalCapped: false };
  const cap = window.offset + SEARCH_COUNT_CAP;
  // One past the cap tells "exactly cap" from "more". A search with few matches has them all here: its page is
  // cut from them and read by id, whatever the planner would have guessed. PostgreSQL's guess for a word its
  // statistics do not list is 0.5 % of the rows, so for a rare word it walked the ids down looking for a page
  // that was not there: a whole pass per call. Only a search with more matches than the cap walks the ids down
  // (rows below): a page is then never far.
  const ids = (await query.idsUpTo(cap + 1).execute()).map((r) => Number(r.id));
  const capped = ids.length > cap;
  const rows = capped
    ? await query.rows.limit(window.limit).offset(window.offset).execute()
    : await filteredRequests(store, {
        ids: ids.sort((x, y) => y - x).slice(window.offset, window.offset + window.limit),
      }).rows.execute();
  return {
    items: rows.map(summaryView),
    total: Math.min(ids.length, cap),
    totalCapped: capped,
    limit: window.limit,
    offset: window.offset,
  };
}

async function summaryOf(store: Store, id: number): Promise<RequestSummary> {
  const r = await filteredRequests(store, { id }).rows.executeTakeFirst();
  if (!r) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
  return summaryView(r);
}

/** Sets one field of a request, with a history row naming the actor; no change, no row. */
async function change(
  store: Store,
  id: number,
  field: 'status' | 'assignee',
  value: string | null,
): Promise<RequestSummary> {
  await withTransaction(store, async (tx) => {
    const r = await tx
      .selectFrom('requests')
      .select(['status', 'assignee'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!r) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
    const old = field === 'status' ? r.status : r.assignee;
    if (old === value) return;
    const at = nowIso();
    const set = field === 'status' ? { status: value!, updated_at: at } : { assignee: value, updated_at: at };
    await tx.updateTable('requests').set(set).where('id', '=', id).execute();
    await tx
      .insertInto('request_history')
      .values({ request_id: id, at, actor: currentActor(), field, old, new: value })
      .execute();
  });
  return summaryOf(store, id);
}

/** The work on requests: the methods RequestsService gains for it. */
export function requestWork(store: Store) {
  return {
    setStatus: async (id: number, status: string) => change(store, id, 'status', checkStatus(status)),
    assign: async (id: number, assignee: string | null) =>
      change(store, id, 'assignee', checkAssignee(assignee)),
    history: async (id: number): Promise<RequestHistoryEntry[]> => {
      const exists = await store.db
        .selectFrom('requests')
        .select('id')
        .where('id', '=', id)
        .executeTakeFirst();
      if (!exists) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
      const rows = await store.db
        .selectFrom('request_history')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('id')
        .execute();
      return rows.map((h) => ({
        id: h.id,
        requestId: h.request_id,
        at: h.at,
        actor: h.actor,
        field: h.field === 'status' ? 'status' : 'assignee',
        old: h.old,
        new: h.new,
      }));
    },
  };
}
