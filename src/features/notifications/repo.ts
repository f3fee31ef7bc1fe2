import type { Selectable } from 'kysely';
import { nowIso, type Store } from '../../store/db.js';
import type { NotificationTable } from '../../store/schema.js';

export type NotificationRow = Selectable<NotificationTable> & {
  portal_name: string | null;
  mailbox_name: string | null;
};

/** The bell's notifications (notify/ records them in the transaction of what they tell about). */
export function createNotificationRepo(store: Store) {
  const db = store.db;
  const select = () =>
    db
      .selectFrom('notifications')
      .leftJoin('portals', 'portals.id', 'notifications.portal_id')
      .leftJoin('mailboxes', 'mailboxes.id', 'notifications.mailbox_id')
      .selectAll('notifications')
      .select(['portals.name as portal_name', 'mailboxes.name as mailbox_name']);
  return {
    /** Newest first; `unread` only those not read yet. */
    list: (q: { unread?: boolean }) => {
      let count = db.selectFrom('notifications');
      let rows = select();
      if (q.unread) {
        count = count.where('read_at', 'is', null);
        rows = rows.where('notifications.read_at', 'is', null);
      }
      return {
        count: count.select((eb) => eb.fn.countAll<number | string>().as('n')),
        rows: rows.orderBy('notifications.id', 'desc'),
      };
    },
    byId: (id: number): Promise<NotificationRow | undefined> =>
      select().where('notifications.id', '=', id).executeTakeFirst(),
    unreadCount: async (): Promise<number> => {
      const r = await db
        .selectFrom('notifications')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('read_at', 'is', null)
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },
    markRead: async (id: number) => {
      await db
        .updateTable('notifications')
        .set({ read_at: nowIso() })
        .where('id', '=', id)
        .where('read_at', 'is', null)
        .execute();
    },
    /** How many were marked. */
    markAllRead: async (): Promise<number> => {
      const r = await db
        .updateTable('notifications')
        .set({ read_at: nowIso() })
        .where('read_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },
  };
}
