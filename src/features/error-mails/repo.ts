import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { ErrorReport } from '../../intake/error-folder.js';
import { nowIso, type Store } from '../../store/db.js';
import type { ErrorMailTable } from '../../store/schema.js';
import { parseStored } from '../../store/stored-json.js';
import type { Tx } from '../../store/tx.js';

export type ErrorMailRow = Selectable<ErrorMailTable> & {
  mailbox_name: string;
  portal_name: string;
  /** The intake log's reasons of the failed attempt (JSON string[]), when its error row is still there. */
  error_reasons: string | null;
};

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
    db
      .selectFrom('error_mails')
      .innerJoin('mailboxes', 'mailboxes.id', 'error_mails.mailbox_id')
      .innerJoin('portals', 'portals.id', 'mailboxes.portal_id');
  // the error's message is the intake log's (the report, which has it too, is sealed); a mail taken in again
  // under the same identity has no error row any more, and then only the code is known
  const withFacts = () =>
    withMailbox()
      .leftJoin('intake_log', (j) =>
        j
          .onRef('intake_log.mailbox_id', '=', 'error_mails.mailbox_id')
          .onRef('intake_log.server_identity', '=', 'error_mails.server_identity')
          .on('intake_log.outcome', '=', 'error'),
      )
      .selectAll('error_mails')
      .select([
        'mailboxes.name as mailbox_name',
        'portals.name as portal_name',
        'intake_log.reasons as error_reasons',
      ]);
  return {
    /** Newest first, with each mail's mailbox and portal names. */
    list: (q: { mailbox?: string; portal?: string; status?: string }) => {
      let count = withMailbox();
      let rows = withFacts();
      if (q.mailbox) {
        count = count.where('mailboxes.name', '=', q.mailbox);
        rows = rows.where('mailboxes.name', '=', q.mailbox);
      }
      if (q.portal) {
        count = count.where('portals.name', '=', q.portal);
        rows = rows.where('portals.name', '=', q.portal);
      }
      if (q.status) {
        count = count.where('error_mails.status', '=', q.status);
        rows = rows.where('error_mails.status', '=', q.status);
      }
      return {
        count: count.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: rows.orderBy('error_mails.id', 'desc'),
      };
    },
    byId: (id: number): Promise<ErrorMailRow | undefined> =>
      withFacts().where('error_mails.id', '=', id).executeTakeFirst(),
    /** The mailbox of each of these error mails (the ids that exist). */
    mailboxesOf: (ids: number[]) =>
      withMailbox()
        .select(['error_mails.id', 'mailboxes.name as mailbox_name'])
        .where('error_mails.id', 'in', ids)
        .execute(),
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
