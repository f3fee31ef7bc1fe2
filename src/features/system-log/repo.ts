import { sql } from 'kysely';
import { z } from 'zod';
import type { Store } from '../../store/db.js';
import { parseStored } from '../../store/stored-json.js';

const detailsSchema = z.record(z.string(), z.unknown());

/** An entry's details (store/system-log.ts writes an object). */
export const storedDetails = (r: { id: number; details: string }): Record<string, unknown> =>
  parseStored(detailsSchema, r.details, { table: 'system_log', column: 'details', id: r.id });

export interface SystemLogFilter {
  category?: string | undefined;
  /** Exactly this actor: `user:<email>`, `api-key:<name>`, `cli:<os user>`, `system`. */
  actor?: string | undefined;
  /** Entries whose details name this mailbox (`details.mailbox`, as every mailbox entry writes it). */
  mailbox?: string | undefined;
  /** ISO 8601 timestamps: entries at or after `since`, before `until`. */
  since?: string | undefined;
  until?: string | undefined;
  before?: number | undefined;
}

/** Reading the system log (store/system-log.ts writes it, in the transaction of what it tells about). */
export function createSystemLogRepo(store: Store) {
  // details is JSON text on both engines; its mailbox is read with each engine's own JSON function
  const detailsMailbox =
    store.engine === 'postgres'
      ? sql<string>`(details::jsonb ->> 'mailbox')`
      : sql<string>`json_extract(details, '$.mailbox')`;
  return {
    /** Whether any entry was written by this actor (a filter naming nobody is a mistake, not an empty log). */
    hasActor: async (actor: string): Promise<boolean> =>
      (await store.db
        .selectFrom('system_log')
        .select('id')
        .where('actor', '=', actor)
        .limit(1)
        .executeTakeFirst()) !== undefined,
    entries: (q: SystemLogFilter) => {
      let base = store.db.selectFrom('system_log');
      if (q.category) base = base.where('category', '=', q.category);
      if (q.actor) base = base.where('actor', '=', q.actor);
      if (q.mailbox) base = base.where(detailsMailbox, '=', q.mailbox);
      if (q.since) base = base.where('created_at', '>=', q.since);
      if (q.until) base = base.where('created_at', '<', q.until);
      if (q.before !== undefined) base = base.where('id', '<', q.before);
      return {
        count: base.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: base.selectAll().orderBy('id', 'desc'),
      };
    },
  };
}
