import { MailintakeError } from '../../kernel/errors.js';
import type { Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import { isSystemLogCategory, SYSTEM_LOG_CATEGORIES } from '../../store/system-log.js';
import type { Page } from '../shared/page.js';
import { createSystemLogRepo, storedDetails } from './repo.js';
import type { SystemLogEntry } from './views.js';

export interface SystemLogService {
  /** Newest first. */
  list(q: {
    category?: string;
    limit?: number;
    offset?: number;
    before?: number;
  }): Promise<Page<SystemLogEntry>>;
}

/** The system log, newest first: who changed what, and what the service itself did. */
export function createSystemLogService(deps: { store: Store }): SystemLogService {
  const repo = createSystemLogRepo(deps.store);
  return {
    list: async (q) => {
      const window = page(q.limit, q.offset);
      if (q.category !== undefined && !isSystemLogCategory(q.category)) {
        const known = SYSTEM_LOG_CATEGORIES.join(', ');
        throw new MailintakeError(
          'INVALID_SETTINGS',
          `no system log category "${q.category}"; the categories are ${known}`,
          { details: { fields: [{ field: 'category', message: `must be one of ${known}` }] } },
        );
      }
      return fetchPage(repo.entries(q), window, (r) => ({
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
