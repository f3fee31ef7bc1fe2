import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';

export const name = '0013_automatic_conversations';

/**
 * An auto-reply (an out-of-office, a vacation notice) that threads to a request is kept on it as a conversation
 * marked automatic (mail/machine.ts), so that the request page says so and nothing answers it. Existing
 * conversations were taken in as people's mail: 0.
 */
export async function up(db: Kysely<unknown>, _engine: Engine): Promise<void> {
  await db.schema
    .alterTable('conversations')
    .addColumn('automatic', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}
