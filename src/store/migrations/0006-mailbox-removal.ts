import type { Kysely } from 'kysely';

export const name = '0006_mailbox_removal';

/** A removed mailbox stays as a tombstone. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A removed mailbox stays as a tombstone (features/mailboxes/service.ts remove): requests, conversations, the
  // intake log, dropped attachments, error mails and notifications keep pointing at it, so no history is
  // lost and no foreign key breaks; its id is never reused, so a new mailbox never inherits its intake
  // log (which would make it skip mails as "already taken in").
  await db.schema.alterTable('mailboxes').addColumn('removed_at', 'text').execute();
}
