import { sql } from 'kysely';
import { currentActor } from '../../kernel/actor.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { Address } from '../../mail/types.js';
import { nowIso, type Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import { requestMatches, sqliteMatch } from '../../store/request-search.js';
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
const MAX_ADDRESS_CHARS = 320;

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

/** The list query: newest first, filtered; only the columns a summary shows (never the bodies). */
export function filteredRequests(store: Store, f: RequestFilter & { id?: number }) {
  const db = store.db;
  // No join: each engine then plans on requests alone (an index on the filter, or the id order for a page);
  // with portals joined, SQLite drove the query from portals and read every request of the portal.
  let base = db.selectFrom('requests');
  // SQLite's search joins the FTS5 table (see sqliteMatch); its columns are only named in SQL, so the join
  // keeps the type of the plain query
  const match = store.engine === 'sqlite' && f.q !== undefined ? sqliteMatch(f.q) : null;
  if (match !== null) {
    base = base.innerJoin(
      sql<{ rowid: number }>`request_search`.as('request_search'),
      'request_search.rowid',
      'requests.id',
    ) as unknown as typeof base;
    base = base.where(sql<boolean>`request_search match ${match}`);
  } else if (f.q !== undefined) {
    base = base.where(requestMatches(store.engine, f.q));
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
    base = base.where((eb) =>
      eb(eb.fn('lower', ['requests.requester_address']), '=', f.requester!.toLowerCase()),
    );
  }
  if (f.before !== undefined) base = base.where('requests.id', '<', f.before);
  if (f.id !== undefined) base = base.where('requests.id', '=', f.id);
  // searching alone (paging aside), SQLite counts the matches in the FTS5 table, without a lookup per match
  const onlySearch =
    match !== null && !f.portal && !f.mailbox && !f.status && !f.requester && f.id === undefined;
  let ftsCount = db
    .selectFrom(sql<{ rowid: number }>`request_search`.as('request_search'))
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(sql<boolean>`request_search match ${match}`);
  if (f.before !== undefined) ftsCount = ftsCount.where(sql<boolean>`rowid < ${f.before}`);
  return {
    count: onlySearch ? ftsCount : base.select((eb) => eb.fn.countAll<number>().as('n')),
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
      .orderBy(match !== null ? sql`request_search.rowid` : sql`requests.id`, 'desc'),
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
  return fetchPage(filteredRequests(store, q), window, summaryView);
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
