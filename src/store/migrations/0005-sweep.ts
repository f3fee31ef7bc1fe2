import type { Kysely } from 'kysely';

export const name = '0005_sweep';

/** Indexes on the blob keys rows refer to, for the leftover sweep. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // The leftover sweep (store/blobs/sweep.ts) asks, for each batch of old files, which keys a row refers to:
  // without these it would scan every table once per batch. The keys are our own hashes and pack names
  // (64 and 32 hex digits), never a sender's value, so they are safe index keys.
  const refs: [string, string][] = [
    ['attachments', 'sha256'],
    ['dropped_attachments', 'sha256'],
    ['intake_log', 'raw_sha256'],
    ['intake_log', 'raw_pack'],
    ['error_mails', 'report_blob'],
    ['error_mails', 'raw_blob'],
  ];
  for (const [table, column] of refs) {
    await db.schema.createIndex(`${table}_${column}_ref`).on(table).column(column).execute();
  }
}
