import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { ErrorReport } from '../../intake/error-folder.js';
import { nowIso, type Store } from '../../store/db.js';
import type { ErrorMailTable } from '../../store/schema.js';
import { parseStored } from '../../store/stored-json.js';
import type { Tx } from '../../store/tx.js';

export type ErrorMailRow = Selectable<ErrorMailTable> & { mailbox_name: string };

/**
 * What an admin's tools rely on in a report (intake/error-folder.ts writes it). The rest passes as written: a
 * report is a record of what happened, shown as it is.
 */
const reportSchema = z.looseObject({
  format: z.literal('mailintake-error-report/1'),
  mailbox: z.string(),
  serverIdentity: z.string(),
  mail: z.looseObject({}),
  error: z.looseObject({ code: z.string(), message: z.string() }),
});

/** A report, opened (the blob is sealed): mail details and the exception. */
export function storedReport(json: string, id: number): ErrorReport {
  const report = parseStored(reportSchema, json, { table: 'error_mails', column: 'report_blob', id });
  return report as typeof report & ErrorReport; // the fields not in the schema: see its comment
}

/** The error_mails table: every query of the error folder's admin operations. */
export function createErrorMailRepo(store: Store) {
  const db = store.db;
  const withMailbox = () =>
    db.selectFrom('error_mails').innerJoin('mailboxes', 'mailboxes.id', 'error_mails.mailbox_id');
  return {
    /** Newest first, with each mail's mailbox name. */
    list: (q: { mailbox?: string; status?: string }) => {
      let base = withMailbox();
      if (q.mailbox) base = base.where('mailboxes.name', '=', q.mailbox);
      if (q.status) base = base.where('error_mails.status', '=', q.status);
      return {
        count: base.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: base
          .selectAll('error_mails')
          .select('mailboxes.name as mailbox_name')
          .orderBy('error_mails.id', 'desc'),
      };
    },
    byId: (id: number): Promise<ErrorMailRow | undefined> =>
      withMailbox()
        .selectAll('error_mails')
        .select('mailboxes.name as mailbox_name')
        .where('error_mails.id', '=', id)
        .executeTakeFirst(),
    /** A mailbox's mails still in the error folder, oldest first, with what the intake log knows of each. */
    openOf: (mailboxId: number) =>
      db
        .selectFrom('error_mails')
        .leftJoin('intake_log', (j) =>
          j
            .onRef('intake_log.mailbox_id', '=', 'error_mails.mailbox_id')
            .onRef('intake_log.server_identity', '=', 'error_mails.server_identity'),
        )
        .select([
          'error_mails.id',
          'error_mails.server_identity',
          'error_mails.location',
          'error_mails.folder',
          'intake_log.size',
          'intake_log.raw_sha256',
        ])
        .where('error_mails.mailbox_id', '=', mailboxId)
        .where('error_mails.status', '=', 'in-error-folder')
        .orderBy('error_mails.id')
        .execute(),
    markMovedToInbox: async (tx: Tx, ids: number[]) => {
      await tx
        .updateTable('error_mails')
        .set({ status: 'moved-to-inbox', moved_back_at: nowIso() })
        .where('id', 'in', ids)
        .where('status', '=', 'in-error-folder')
        .execute();
    },
    countOpen: async (mailboxId: number): Promise<number> => {
      const { n } = await db
        .selectFrom('error_mails')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('mailbox_id', '=', mailboxId)
        .where('status', '=', 'in-error-folder')
        .executeTakeFirstOrThrow();
      return Number(n);
    },
  };
}

export type ErrorMailRepo = ReturnType<typeof createErrorMailRepo>;
