import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex } from './shared.js';

export const name = '0014_replies';

/**
 * The help desk answers: a technician's reply or forward is an outgoing conversation of the request and a row of
 * the outbox, which now carries what such a mail needs (its request, sender, Cc/Bcc, our Message-ID and the
 * thread headers, attachments) and its delivery state, including a bounce that came back for it. Additive only:
 * a notification row leaves every new column null and is sent as before.
 */
export async function up(db: Kysely<unknown>, _engine: Engine): Promise<void> {
  const outbox = (column: string, type: 'integer' | 'text') =>
    db.schema.alterTable('mail_outbox').addColumn(column, type).execute();
  await outbox('request_id', 'integer');
  await outbox('conversation_id', 'integer');
  await outbox('from_address', 'text');
  await outbox('from_name', 'text');
  await outbox('cc', 'text');
  await outbox('bcc', 'text');
  await outbox('reply_to', 'text');
  await outbox('message_id', 'text');
  // valueKey(message_id): a bounce names the Message-ID it reports on, and finds the row by this key
  await outbox('message_key', 'text');
  await outbox('in_reply_to', 'text');
  await outbox('references_ids', 'text');
  await outbox('html_body', 'text');
  await outbox('attachments', 'text');
  await outbox('failure_status', 'text');
  await outbox('failure_reason', 'text');
  await outbox('bounced_at', 'text');
  await addIndex(db, 'mail_outbox_message_key', 'mail_outbox', ['message_key']);
  await addIndex(db, 'mail_outbox_request', 'mail_outbox', ['request_id']);
  // Existing conversations all came in by mail.
  await db.schema
    .alterTable('conversations')
    .addColumn('direction', 'text', (c) => c.notNull().defaultTo('in'))
    .execute();
  await db.schema.alterTable('conversations').addColumn('actor', 'text').execute();
}
