import type { Kysely } from 'kysely';
import type { Engine } from '../engine.js';
import { addIndex } from './shared.js';

export const name = '0012_failing_since';

/**
 * The mailbox list says "failing since …": the time of the first failed round of the current run of failures,
 * set when the run starts and cleared by the next round that connects (consecutive_failures counts the same run).
 * Mailboxes failing when this runs keep null until their next failure: the start of a run already under way is
 * not known.
 *
 * The request page reads a request's intake-log entries (why each mail landed there): an index on request_id,
 * which the log had not needed while it was read by mailbox and Message-ID only.
 */
export async function up(db: Kysely<unknown>, _engine: Engine): Promise<void> {
  await db.schema.alterTable('mailboxes').addColumn('failing_since', 'text').execute();
  await addIndex(db, 'intake_log_request', 'intake_log', ['request_id', 'id']);
}
