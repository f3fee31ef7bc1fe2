import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex, attachmentColumns, autoId, required } from './shared.js';

export const name = '0002_attachment_checks';

/** The portal's attachment policy, the log of dropped attachments, and the system log. */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  const id = autoId(engine);
  // '{}' is "all defaults" (mail/attachment-checks.ts DEFAULT_ATTACHMENT_POLICY): existing portals
  // get the checks with the reference's defaults, and later default changes reach them.
  await db.schema
    .alterTable('portals')
    .addColumn('attachment_policy', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema
    .createTable('dropped_attachments')
    .addColumn('id', id)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('conversation_id', 'integer', (c) => c.references('conversations.id'))
    // The mail it came with, by the intake log's identity (the log row may be an UPDATE of an
    // earlier error row, so its id is not known when the batch gathers these rows).
    .addColumn('mailbox_id', 'integer', (c) => c.notNull().references('mailboxes.id'))
    .addColumn('server_identity', 'text', required)
    .$call(attachmentColumns)
    .addColumn('code', 'text', required)
    .addColumn('message', 'text', required)
    .addColumn('detail', 'text', required)
    .addColumn('created_at', 'text', required)
    .execute();
  await addIndex(db, 'dropped_attachments_request', 'dropped_attachments', ['request_id']);
  await db.schema
    .createTable('system_log')
    .addColumn('id', id)
    .addColumn('created_at', 'text', required)
    .addColumn('level', 'text', required)
    .addColumn('category', 'text', required)
    .addColumn('message', 'text', required)
    .addColumn('details', 'text', required)
    .execute();
  await addIndex(db, 'system_log_category', 'system_log', ['category', 'id']);
}
