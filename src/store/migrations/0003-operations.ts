import { type Kysely, sql } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex, autoId, required } from './shared.js';

export const name = '0003_operations';

/** Who did what, why a mailbox is off, instance settings, notification rules and the outbox, error mails. */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  const id = autoId(engine);
  // Who did what the entry tells (kernel/actor.ts); entries written before say 'system'.
  await db.schema
    .alterTable('system_log')
    .addColumn('actor', 'text', (c) => c.notNull().defaultTo('system'))
    .execute();
  // Why a disabled mailbox is disabled: 'admin' (disabled by hand), 'settings-changed' (paused to save
  // settings during a fetch; the reference keeps it off until an admin enables it), 'error-folder-limit'
  // (stopped at "stop mail fetching after N mails"). Null while enabled.
  await db.schema.alterTable('mailboxes').addColumn('disabled_reason', 'text').execute();
  // 1 once a connection-failure alert went out and the mailbox has not connected since: the next
  // successful connection sends the "recovered" notice and clears it.
  await db.schema
    .alterTable('mailboxes')
    .addColumn('failure_alerted', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // Instance-wide settings (the reference's "instance based" rows): connection-failure threshold and its
  // switch, the outgoing SMTP server (its password sealed). JSON values.
  await db.schema
    .createTable('instance_settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', required)
    .addColumn('updated_at', 'text', required)
    .execute();
  // Notification rules: who gets an email for which event (the reference's Admin > Notification Rules).
  // portal_id null: every portal.
  await db.schema
    .createTable('notification_rules')
    .addColumn('id', id)
    .addColumn('portal_id', 'integer', (c) => c.references('portals.id'))
    .addColumn('event', 'text', required)
    .addColumn('recipients', 'text', required)
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', required)
    .addColumn('updated_at', 'text', required)
    .execute();
  // Bell notifications for admins.
  await db.schema
    .createTable('notifications')
    .addColumn('id', id)
    .addColumn('portal_id', 'integer', (c) => c.references('portals.id'))
    .addColumn('mailbox_id', 'integer', (c) => c.references('mailboxes.id'))
    .addColumn('event', 'text', required)
    .addColumn('title', 'text', required)
    .addColumn('body', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('read_at', 'text')
    .execute();
  await addIndex(db, 'notifications_unread', 'notifications', ['read_at', 'id']);
  // Outgoing notification mail, written in the transaction of what it tells about and sent afterwards
  // (a crash between the two delays the mail, never loses it).
  await db.schema
    .createTable('mail_outbox')
    .addColumn('id', id)
    .addColumn('event', 'text', required)
    .addColumn('recipients', 'text', required)
    .addColumn('subject', 'text', required)
    .addColumn('body', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', required)
    .addColumn('sent_at', 'text')
    .addColumn('last_error', 'text')
    // Set when sending was given up (the server refused it permanently, or too many attempts): such a mail
    // is not tried again until an operator retries it (notify/outbox.ts).
    .addColumn('failed_at', 'text')
    .execute();
  await addIndex(db, 'mail_outbox_due', 'mail_outbox', ['sent_at', 'next_attempt_at']);
  // Error mails (the reference's error folder): one row per mail moved aside, with its report (mail details
  // and the exception) sealed with the secret box and kept as a blob; POP3 also keeps the raw mail sealed.
  await db.schema
    .createTable('error_mails')
    .addColumn('id', id)
    .addColumn('mailbox_id', 'integer', (c) => c.notNull().references('mailboxes.id'))
    .addColumn('server_identity', 'text', required)
    .addColumn('error_code', 'text', required)
    // 'server-folder' (moved to the error folder on the server) or 'kept-locally' (POP3)
    .addColumn('location', 'text', required)
    .addColumn('folder', 'text')
    .addColumn('report_blob', 'text', required)
    .addColumn('raw_blob', 'text')
    // 'in-error-folder' until "move mails to inbox" sets 'moved-to-inbox'
    .addColumn('status', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('moved_back_at', 'text')
    .execute();
  await addIndex(db, 'error_mails_open', 'error_mails', ['mailbox_id', 'status']);
  // At most one open error row per mail: the row is written before the mail is moved, so a crash in
  // between lists the mail again, and the next round must only finish the move, not report it twice.
  // Partial, because a mail moved back to the inbox keeps its identity on some servers (Graph's immutable
  // ids; POP3's kept copies) and may fail again after the admin's fix.
  await db.schema
    .createIndex('error_mails_one_open')
    .unique()
    .on('error_mails')
    .columns(['mailbox_id', 'server_identity'])
    .where(sql.ref('status'), '=', 'in-error-folder')
    .execute();
}
