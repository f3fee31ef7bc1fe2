import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import {
  addIndex,
  attachmentColumns,
  autoId,
  mailBodyColumns,
  mailHeaderColumns,
  required,
} from './shared.js';

export const name = '0001_foundation';

/** Portals, mailboxes, requests with their conversations and attachments, the intake log and API keys. */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  const id = autoId(engine);
  await db.schema
    .createTable('portals')
    .addColumn('id', id)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('header_threading', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', required)
    .execute();
  await db.schema
    .createTable('mailboxes')
    .addColumn('id', id)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('portal_id', 'integer', (c) => c.notNull().references('portals.id'))
    .addColumn('protocol', 'text', required)
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('settings', 'text', required)
    .addColumn('secrets', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('updated_at', 'text', required)
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('last_fetch_at', 'text')
    .addColumn('last_error_code', 'text')
    .addColumn('last_error_message', 'text')
    .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('requests')
    .addColumn('id', id)
    .addColumn('portal_id', 'integer', (c) => c.notNull().references('portals.id'))
    .addColumn('mailbox_id', 'integer', (c) => c.references('mailboxes.id'))
    .addColumn('subject', 'text', required)
    .addColumn('requester_address', 'text')
    .addColumn('requester_name', 'text')
    .$call(mailHeaderColumns)
    .$call(mailBodyColumns)
    .addColumn('status', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('updated_at', 'text', required)
    .execute();
  await addIndex(db, 'requests_portal', 'requests', ['portal_id', 'id']);
  await db.schema
    .createTable('conversations')
    .addColumn('id', id)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('mailbox_id', 'integer', (c) => c.references('mailboxes.id'))
    .addColumn('from_address', 'text')
    .addColumn('from_name', 'text')
    .$call(mailHeaderColumns)
    .addColumn('subject', 'text', required)
    .$call(mailBodyColumns)
    .addColumn('created_at', 'text', required)
    .execute();
  await addIndex(db, 'conversations_request', 'conversations', ['request_id']);
  await db.schema
    .createTable('attachments')
    .addColumn('id', id)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('conversation_id', 'integer', (c) => c.references('conversations.id'))
    .$call(attachmentColumns)
    .addColumn('created_at', 'text', required)
    .execute();
  await addIndex(db, 'attachments_request', 'attachments', ['request_id']);
  await db.schema
    .createTable('message_ids')
    .addColumn('portal_id', 'integer', (c) => c.notNull().references('portals.id'))
    .addColumn('message_id', 'text', required)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addPrimaryKeyConstraint('message_ids_pk', ['portal_id', 'message_id'])
    .execute();
  await db.schema
    .createTable('intake_log')
    .addColumn('id', id)
    .addColumn('mailbox_id', 'integer', (c) => c.notNull().references('mailboxes.id'))
    .addColumn('server_identity', 'text', required)
    .addColumn('message_id', 'text')
    .addColumn('content_hash', 'text')
    .addColumn('fingerprint', 'text')
    .addColumn('raw_sha256', 'text')
    .addColumn('raw_pack', 'text')
    .addColumn('raw_offset', 'bigint')
    .addColumn('raw_length', 'bigint')
    .addColumn('outcome', 'text', required)
    .addColumn('request_id', 'integer', (c) => c.references('requests.id'))
    .addColumn('conversation_id', 'integer', (c) => c.references('conversations.id'))
    .addColumn('error_code', 'text')
    .addColumn('reasons', 'text', required)
    .addColumn('subject', 'text')
    .addColumn('from_address', 'text')
    .addColumn('size', 'bigint')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('acknowledged', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', required)
    .addColumn('updated_at', 'text', required)
    // The exactly-once guarantee rests on this constraint: a second effect for the same server mail
    // cannot commit, whatever raced or crashed.
    .addUniqueConstraint('intake_log_identity', ['mailbox_id', 'server_identity'])
    .execute();
  await addIndex(db, 'intake_log_unacknowledged', 'intake_log', ['mailbox_id', 'acknowledged']);
  await addIndex(db, 'intake_log_fallback', 'intake_log', ['mailbox_id', 'message_id', 'content_hash']);
  await addIndex(db, 'intake_log_message_id', 'intake_log', ['message_id', 'fingerprint']);
  await db.schema
    .createTable('api_keys')
    .addColumn('id', id)
    .addColumn('name', 'text', required)
    .addColumn('prefix', 'text', required)
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'text', required)
    .addColumn('last_used_at', 'text')
    .execute();
}
