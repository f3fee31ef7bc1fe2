import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex, autoId, required } from './shared.js';

export const name = '0008_people';

/**
 * The people of the web console: users (admins, and technicians of one portal), their sessions (stored here so
 * they work across processes), one-time password-set links, and the failed sign-in counters that slow down
 * guessing per account and per address. Tokens are stored only as their sha256; passwords only as scrypt hashes.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', autoId(engine))
    // lowercased before it is stored, so unique here means unique case-insensitively
    .addColumn('email', 'text', (c) => c.notNull().unique())
    .addColumn('role', 'text', required)
    .addColumn('portal_id', 'integer', (c) => c.references('portals.id'))
    // null until the person sets a password through a link
    .addColumn('password_hash', 'text')
    .addColumn('created_at', 'text', required)
    .addColumn('disabled_at', 'text')
    .execute();
  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('csrf_token', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('expires_at', 'text', required)
    .addColumn('last_seen_at', 'text', required)
    .execute();
  await addIndex(db, 'sessions_user', 'sessions', ['user_id']);
  await db.schema
    .createTable('password_links')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('expires_at', 'text', required)
    .addColumn('used_at', 'text')
    .execute();
  await addIndex(db, 'password_links_user', 'password_links', ['user_id']);
  await db.schema
    .createTable('sign_in_failures')
    // 'account:<sha256 of the email>' or 'address:<sha256 of the address>': never a typed value as a key
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('count', 'integer', required)
    .addColumn('window_start', 'text', required)
    .addColumn('locked_until', 'text')
    .execute();
}
