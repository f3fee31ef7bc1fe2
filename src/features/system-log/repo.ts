import { z } from 'zod';
import type { Store } from '../../store/db.js';
import { parseStored } from '../../store/stored-json.js';

const detailsSchema = z.record(z.string(), z.unknown());

/** An entry's details (store/system-log.ts writes an object). */
export const storedDetails = (r: { id: number; details: string }): Record<string, unknown> =>
  parseStored(detailsSchema, r.details, { table: 'system_log', column: 'details', id: r.id });

/** Reading the system log (store/system-log.ts writes it, in the transaction of what it tells about). */
export function createSystemLogRepo(store: Store) {
  return {
    entries: (q: { category?: string; before?: number }) => {
      let base = store.db.selectFrom('system_log');
      if (q.category) base = base.where('category', '=', q.category);
      if (q.before !== undefined) base = base.where('id', '<', q.before);
      return {
        count: base.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: base.selectAll().orderBy('id', 'desc'),
      };
    },
  };
}
