import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex, autoId, required } from './shared.js';

export const name = '0015_requesters';

/**
 * Requesters, participants, acknowledgements and the per-sender limit:
 * - portals.mail_settings: the portal's form senders, CC-participant switch, acknowledgement template and
 *   per-sender limit (mail/portal-mail.ts), as one JSON column holding only the fields an admin set, like
 *   attachment_policy: the settings are read together by the intake, a new field needs no migration, and a
 *   later change of a default reaches every portal that did not override it.
 * - requests.requester_key: the requester's address hashed (store/keys.ts, lower-cased first), and the index
 *   (portal_id, requester_key, created_at) the per-sender limit counts with. requester_norm is not used for it:
 *   it is null for an address longer than the filter takes, which would let such a sender past the limit.
 *   Existing rows keep null: they are older than any window worth counting, so nothing is backfilled.
 * - request_participants: who else takes part (CC'd people), unique per request and hashed address.
 * - acknowledgements: one row per acknowledgement mail queued, counted per (portal, sender key) for the
 *   hourly cap, so that no correspondent is mailed back without end.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema
    .alterTable('portals')
    .addColumn('mail_settings', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema.alterTable('requests').addColumn('requester_key', 'text').execute();
  await addIndex(db, 'requests_sender_window', 'requests', ['portal_id', 'requester_key', 'created_at']);
  await db.schema
    .createTable('request_participants')
    .addColumn('id', autoId(engine))
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('address_key', 'text', required)
    .addColumn('address', 'text', required)
    .addColumn('name', 'text')
    .addColumn('added_at', 'text', required)
    // 'cc' (a mail's CC), later 'technician' (added by hand)
    .addColumn('source', 'text', required)
    .addColumn('conversation_id', 'integer')
    .addUniqueConstraint('request_participants_unique', ['request_id', 'address_key'])
    .execute();
  await db.schema
    .createTable('acknowledgements')
    .addColumn('id', autoId(engine))
    .addColumn('portal_id', 'integer', (c) => c.notNull().references('portals.id'))
    .addColumn('sender_key', 'text', required)
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('created_at', 'text', required)
    .execute();
  await addIndex(db, 'acknowledgements_sender', 'acknowledgements', [
    'portal_id',
    'sender_key',
    'created_at',
  ]);
}
