import { type Kysely, sql } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex, autoId, required } from './shared.js';

export const name = '0009_request_work';

/** The statuses as of this migration (features/requests/views.ts has the current list). */
const REQUEST_STATUSES = ['open', 'in-progress', 'on-hold', 'resolved', 'closed'] as const;

/**
 * Requests are worked on: a status (the column exists since 0001, intake writes "open"), an assignee (an email,
 * free text until there are users), and the history of both changes with who made them.
 */
export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema.alterTable('requests').addColumn('assignee', 'text').execute();
  // Intake has only ever written "open"; anything else (a hand-edited row) becomes open, so every row is valid.
  await sql`update requests set status = 'open' where status not in (${sql.join(
    REQUEST_STATUSES.map((s) => sql.lit(s)),
  )})`.execute(db);
  // The status filter pages newest first: (status, id) serves both the filter and the order.
  await addIndex(db, 'requests_status', 'requests', ['status', 'id']);
  await db.schema
    .createTable('request_history')
    .addColumn('id', autoId(engine))
    .addColumn('request_id', 'integer', (c) => c.notNull().references('requests.id'))
    .addColumn('at', 'text', required)
    .addColumn('actor', 'text', required)
    .addColumn('field', 'text', required)
    .addColumn('old', 'text')
    .addColumn('new', 'text')
    .execute();
  await addIndex(db, 'request_history_request', 'request_history', ['request_id', 'id']);
}
