import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { Address } from '../../mail/types.js';
import type { Store } from '../../store/db.js';
import type { IntakeLogTable } from '../../store/schema.js';
import { parseStored, type StoredPlace, storedStrings } from '../../store/stored-json.js';

const addressListSchema = z.array(z.object({ address: z.string(), name: z.string() }));

/** A stored list of addresses (To, Cc of a request or conversation). */
export const storedAddresses = (json: string, where: StoredPlace): Address[] =>
  parseStored(addressListSchema, json, where);

/** The reasons of an intake log entry (the classifier's and the error's). */
export const storedReasons = (r: { id: number; reasons: string }): string[] =>
  storedStrings(r.reasons, { table: 'intake_log', column: 'reasons', id: r.id });

export type IntakeLogRow = Selectable<IntakeLogTable> & { mailbox_name: string };

/** Requests, their conversations and attachments, and the intake log: every query of these views. */
export function createRequestRepo(store: Store) {
  const db = store.db;
  return {
    portalExists: async (name: string) =>
      (await db.selectFrom('portals').select('id').where('name', '=', name).executeTakeFirst()) !== undefined,
    /** Any mailbox by that name, removed ones included (their history is kept under "<name> (removed #<id>)"). */
    mailboxExists: async (name: string) =>
      (await db.selectFrom('mailboxes').select('id').where('name', '=', name).executeTakeFirst()) !==
      undefined,
    removedMailboxNames: async () =>
      (await db.selectFrom('mailboxes').select('name').where('removed_at', 'is not', null).execute()).map(
        (r) => r.name,
      ),
    /** Requests newest first, with their portal and number of conversations. */
    requests: (q: { portal?: string; before?: number }) => {
      let base = db.selectFrom('requests').innerJoin('portals', 'portals.id', 'requests.portal_id');
      if (q.portal) base = base.where('portals.name', '=', q.portal);
      if (q.before !== undefined) base = base.where('requests.id', '<', q.before);
      return {
        count: base.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: base
          .selectAll('requests')
          .select('portals.name as portal_name')
          .select((eb) =>
            eb
              .selectFrom('conversations')
              .select((e) => e.fn.countAll<number>().as('c'))
              .whereRef('conversations.request_id', '=', 'requests.id')
              .as('conversation_count'),
          )
          .orderBy('requests.id', 'desc'),
      };
    },
    /** The portal a request belongs to (undefined: no such request), without reading its bodies. */
    portalOfRequest: async (id: number) =>
      (
        await db
          .selectFrom('requests')
          .innerJoin('portals', 'portals.id', 'requests.portal_id')
          .select('portals.name')
          .where('requests.id', '=', id)
          .executeTakeFirst()
      )?.name,
    /** The mailbox name of each of these requests (null: none), for a page of the list. */
    mailboxesOf: (ids: number[]) =>
      ids.length === 0
        ? Promise.resolve([])
        : db
            .selectFrom('requests')
            .leftJoin('mailboxes', 'mailboxes.id', 'requests.mailbox_id')
            .select(['requests.id', 'mailboxes.name'])
            .where('requests.id', 'in', ids)
            .execute(),
    request: (id: number) =>
      db
        .selectFrom('requests')
        .innerJoin('portals', 'portals.id', 'requests.portal_id')
        .leftJoin('mailboxes', 'mailboxes.id', 'requests.mailbox_id')
        .selectAll('requests')
        .select(['portals.name as portal_name', 'mailboxes.name as mailbox_name'])
        .where('requests.id', '=', id)
        .executeTakeFirst(),
    /** A request's conversations in order; `only`: that one alone. */
    conversations: (requestId: number, only?: number) => {
      let q = db
        .selectFrom('conversations')
        .leftJoin('mailboxes', 'mailboxes.id', 'conversations.mailbox_id')
        .selectAll('conversations')
        .select('mailboxes.name as mailbox_name')
        .where('request_id', '=', requestId);
      if (only !== undefined) q = q.where('conversations.id', '=', only);
      return q.orderBy('conversations.id').execute();
    },
    conversationCount: async (requestId: number) =>
      Number(
        (
          await db
            .selectFrom('conversations')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where('request_id', '=', requestId)
            .executeTakeFirstOrThrow()
        ).n,
      ),
    /** Its participants, in the order they joined. */
    participants: (requestId: number) =>
      db
        .selectFrom('request_participants')
        .select(['address', 'name', 'source', 'conversation_id', 'added_at'])
        .where('request_id', '=', requestId)
        .orderBy('id')
        .execute(),
    /** The log entries of the mails that made or extended a request, oldest first. */
    takenInEntries: (requestId: number) =>
      db
        .selectFrom('intake_log')
        .select(['id', 'conversation_id'])
        .where('request_id', '=', requestId)
        .where('outcome', 'in', ['created', 'appended'])
        .orderBy('id')
        .execute(),
    /** The outbox rows of a request's replies and forwards (`only`: of that conversation). */
    deliveriesOf: (requestId: number, only?: number) => {
      let q = db.selectFrom('mail_outbox').selectAll().where('request_id', '=', requestId);
      if (only !== undefined) q = q.where('conversation_id', '=', only);
      return q.orderBy('id').execute();
    },
    /** A request's attachments (`only`: of that conversation). */
    attachmentsOf: (requestId: number, only?: number) => {
      let q = db.selectFrom('attachments').selectAll().where('request_id', '=', requestId);
      if (only !== undefined) q = q.where('conversation_id', '=', only);
      return q.orderBy('id').execute();
    },
    droppedOf: (requestId: number) =>
      db
        .selectFrom('dropped_attachments')
        .selectAll()
        .where('request_id', '=', requestId)
        .orderBy('id')
        .execute(),
    attachment: (id: number) =>
      db.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirst(),
    /** The bodies of one mail of a request: its first mail (conversationId null) or one of its conversations. */
    mailBody: (requestId: number, conversationId: number | null) =>
      conversationId === null
        ? db
            .selectFrom('requests')
            .select(['id', 'text_body', 'html_body'])
            .where('id', '=', requestId)
            .executeTakeFirst()
        : db
            .selectFrom('conversations')
            .select(['id', 'text_body', 'html_body'])
            .where('request_id', '=', requestId)
            .where('id', '=', conversationId)
            .executeTakeFirst(),
    /** The parts with a Content-ID of one mail of a request (its first mail when conversationId is null). */
    contentIdsOf: (requestId: number, conversationId: number | null) =>
      db
        .selectFrom('attachments')
        .select(['id', 'content_id', 'content_type', 'size', 'sha256'])
        .where('request_id', '=', requestId)
        .where('content_id', 'is not', null)
        .where('conversation_id', conversationId === null ? 'is' : '=', conversationId)
        .orderBy('id')
        .execute(),
    /** One attachment, only when it belongs to that request. */
    attachmentOfRequest: (requestId: number, attachmentId: number) =>
      db
        .selectFrom('attachments')
        .selectAll()
        .where('id', '=', attachmentId)
        .where('request_id', '=', requestId)
        .executeTakeFirst(),
    /** Where an intake log entry's raw mail is kept (a blob, or a slice of a raw pack). */
    rawOf: (logId: number) =>
      db
        .selectFrom('intake_log')
        .select(['id', 'raw_sha256', 'raw_pack', 'raw_offset', 'raw_length'])
        .where('id', '=', logId)
        .executeTakeFirst(),
    /** The intake log newest first, with each entry's mailbox name. */
    intakeLog: (q: { mailbox?: string; outcome?: string; request?: number; before?: number }) => {
      let base = db.selectFrom('intake_log').innerJoin('mailboxes', 'mailboxes.id', 'intake_log.mailbox_id');
      if (q.mailbox) base = base.where('mailboxes.name', '=', q.mailbox);
      if (q.request !== undefined) base = base.where('intake_log.request_id', '=', q.request);
      if (q.before !== undefined) base = base.where('intake_log.id', '<', q.before);
      if (q.outcome) base = base.where('intake_log.outcome', '=', q.outcome);
      return {
        count: base.select((eb) => eb.fn.countAll<number>().as('n')),
        rows: base
          .selectAll('intake_log')
          .select('mailboxes.name as mailbox_name')
          .orderBy('intake_log.id', 'desc'),
      };
    },
  };
}

export type RequestRepo = ReturnType<typeof createRequestRepo>;
