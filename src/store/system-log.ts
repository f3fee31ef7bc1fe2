import { currentActor } from '../kernel/actor.js';
import { nowIso } from './db.js';
import type { Tx } from './tx.js';

/**
 * The system log: an append-only, queryable record of what Mailintake did and why. This is its only writer,
 * and it takes the caller's transaction, so an entry commits exactly when the effect it describes commits
 * (a rolled-back batch leaves no entry about drops that never happened).
 */
export type SystemLogLevel = 'info' | 'warn' | 'error';

export {
  isSystemLogCategory,
  SYSTEM_LOG_CATEGORIES,
  type SystemLogCategory,
} from '../kernel/system-log-categories.js';

import type { SystemLogCategory } from '../kernel/system-log-categories.js';

export interface SystemLogInput {
  level: SystemLogLevel;
  category: SystemLogCategory;
  message: string;
  details?: Record<string, unknown>;
}

export async function systemLog(tx: Tx, entry: SystemLogInput | SystemLogInput[]): Promise<void> {
  const entries = Array.isArray(entry) ? entry : [entry];
  const now = nowIso();
  const actor = currentActor();
  for (let i = 0; i < entries.length; i += 200) {
    await tx
      .insertInto('system_log')
      .values(
        entries.slice(i, i + 200).map((e) => ({
          created_at: now,
          actor,
          level: e.level,
          category: e.category,
          message: e.message,
          details: JSON.stringify(e.details ?? {}),
        })),
      )
      .execute();
  }
}
