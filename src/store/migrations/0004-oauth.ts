import type { Kysely } from 'kysely';
import { required } from './shared.js';

export const name = '0004_oauth';

/** OAuth 2.0 tokens per owner, and the authorizations started but not yet completed. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // OAuth 2.0 tokens, one row per owner ('mailbox:<id>' or 'smtp'). The tokens are sealed with the secret
  // box; everything shown to admins (expiry, scope, account, last refresh) is plain. `refresh_lock_*` is a
  // claim-by-UPDATE lease, so one process refreshes at a time: with rotating refresh tokens two concurrent
  // refreshes would burn the token (the second one gets invalid_grant).
  await db.schema
    .createTable('oauth_tokens')
    .addColumn('owner', 'text', (c) => c.primaryKey())
    // what the tokens were issued for: a change of client, token URL, scope or account invalidates them
    .addColumn('binding', 'text', required)
    .addColumn('flow', 'text', required)
    .addColumn('sealed', 'text', required)
    .addColumn('access_expires_at', 'text')
    .addColumn('scope', 'text')
    .addColumn('account', 'text')
    // 'authorized' | 'reauthorize-required'
    .addColumn('status', 'text', required)
    .addColumn('obtained_at', 'text', required)
    .addColumn('last_refresh_at', 'text')
    .addColumn('refresh_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error_code', 'text')
    .addColumn('last_error_message', 'text')
    .addColumn('refresh_lock_owner', 'text')
    .addColumn('refresh_lock_until', 'text')
    .addColumn('updated_at', 'text', required)
    .execute();
  // Authorizations started and not yet completed: the state is the key the callback brings back; the PKCE
  // verifier is sealed. One use: the callback deletes the row in the transaction that stores the tokens.
  await db.schema
    .createTable('oauth_pending')
    .addColumn('state', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', required)
    .addColumn('binding', 'text', required)
    .addColumn('sealed', 'text', required)
    .addColumn('redirect_url', 'text', required)
    .addColumn('started_by', 'text', required)
    .addColumn('created_at', 'text', required)
    .addColumn('expires_at', 'text', required)
    .execute();
}
