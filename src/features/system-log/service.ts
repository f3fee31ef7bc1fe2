import { MailintakeError } from '../../kernel/errors.js';
import type { Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import { isSystemLogCategory, SYSTEM_LOG_CATEGORIES } from '../../store/system-log.js';
import { assertMailboxExists } from '../requests/service.js';
import type { Page } from '../shared/page.js';
import { createSystemLogRepo, storedDetails } from './repo.js';
import type { SystemLogEntry } from './views.js';

export interface SystemLogService {
  /**
   * Newest first. Filters: `category`; `actor` exactly (`user:<email>`, `api-key:<name>`, `cli:<os user>`,
   * `system`); `mailbox` (entries that name it); `since` / `until`, a date (YYYY-MM-DD, UTC) or an ISO 8601
   * time: entries at or after `since` and before `until`.
   */
  list(q: {
    category?: string | undefined;
    actor?: string | undefined;
    mailbox?: string | undefined;
    since?: string | undefined;
    until?: string | undefined;
    limit?: number | undefined;
    offset?: number | undefined;
    before?: number | undefined;
  }): Promise<Page<SystemLogEntry>>;
}

/** The system log, newest first: who changed what, and what the service itself did. */
export function createSystemLogService(deps: { store: Store }): SystemLogService {
  const repo = createSystemLogRepo(deps.store);
  return {
    list: async (q) => {
      const window = page(q.limit, q.offset);
      const bad: { field: string; message: string }[] = [];
      if (q.category !== undefined && !isSystemLogCategory(q.category)) {
        bad.push({ field: 'category', message: `must be one of ${SYSTEM_LOG_CATEGORIES.join(', ')}` });
      }
      const since = q.since === undefined ? undefined : isoTime(q.since);
      const until = q.until === undefined ? undefined : isoTime(q.until);
      if (since === null) bad.push({ field: 'since', message: TIME_HELP });
      if (until === null) bad.push({ field: 'until', message: TIME_HELP });
      if (since && until && since >= until) {
        bad.push({ field: 'until', message: 'must be later than "since"' });
      }
      if (bad.length > 0) {
        const message =
          bad[0]?.field === 'category' && bad.length === 1
            ? `no system log category "${q.category}"; the categories are ${SYSTEM_LOG_CATEGORIES.join(', ')}`
            : `invalid system log filter: ${bad.map((b) => `${b.field} ${b.message}`).join('; ')}`;
        throw new MailintakeError('INVALID_SETTINGS', message, { details: { fields: bad } });
      }
      // a filter naming nothing that exists is NOT_FOUND, as every list's is, so a typo never looks like "empty"
      if (q.mailbox !== undefined) await assertMailboxExists(deps.store, q.mailbox);
      if (q.actor !== undefined && !(await repo.hasActor(q.actor))) {
        const message = `no system log entry was made by "${q.actor}"; actors look like user:<email>, api-key:<name>, cli:<os user> or system`;
        throw new MailintakeError('NOT_FOUND', message, {
          details: { fields: [{ field: 'actor', message }] },
        });
      }
      const filter = { ...q, since: since ?? undefined, until: until ?? undefined };
      return fetchPage(repo.entries(filter), window, (r) => ({
        id: r.id,
        createdAt: r.created_at,
        actor: r.actor,
        level: r.level,
        category: r.category,
        message: r.message,
        details: storedDetails(r),
      }));
    },
  };
}

const TIME_HELP = 'must be a date (YYYY-MM-DD) or a time such as 2026-03-01T09:30:00Z';

/**
 * The stored form of a time filter: entries carry `Date#toISOString()` (UTC, milliseconds, `Z`), which sorts as
 * text; a bare date is its midnight UTC. Null when it is neither.
 */
function isoTime(value: string): string | null {
  const text = value.trim();
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return null;
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
