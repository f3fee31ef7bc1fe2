import { z } from 'zod';
import type { Store } from '../../store/db.js';
import { parseStored } from '../../store/stored-json.js';
import type { Tx } from '../../store/tx.js';

/** Tables whose `sealed` column holds OAuth secrets, with the column that names a row. */
export const SEALED_OAUTH_TABLES = [
  { table: 'oauth_tokens', key: 'owner' },
  { table: 'oauth_pending', key: 'state' },
] as const;

/**
 * Everything sealed with the secret box, read and written back compare-and-set: a value changed meanwhile (a new
 * password, a refreshed token) keeps its new value.
 */
export function createSealedRepo(store: Store) {
  const db = store.db;
  return {
    mailboxSecrets: () => db.selectFrom('mailboxes').select(['id', 'name', 'secrets']).execute(),
    swapMailboxSecrets: async (id: number, from: string, to: string) => {
      await db
        .updateTable('mailboxes')
        .set({ secrets: to })
        .where('id', '=', id)
        .where('secrets', '=', from)
        .execute();
    },
    /** Instance settings, each value parsed (any JSON: only objects can hold sealed fields). */
    instanceSettings: async () =>
      (await db.selectFrom('instance_settings').select(['key', 'value']).execute()).map((r) => ({
        ...r,
        parsed: parseStored(z.unknown(), r.value, { table: 'instance_settings', column: 'value', id: r.key }),
      })),
    swapInstanceSetting: async (key: string, from: string, to: string) => {
      await db
        .updateTable('instance_settings')
        .set({ value: to })
        .where('key', '=', key)
        .where('value', '=', from)
        .execute();
    },
    /** The sealed OAuth rows of a table, each named by its key column. */
    sealedOAuth: async (t: (typeof SEALED_OAUTH_TABLES)[number]) =>
      (await db.selectFrom(t.table).select([t.key, 'sealed']).execute()).map((r) => ({
        id: (r as Record<string, string>)[t.key]!,
        sealed: r.sealed,
      })),
    swapSealedOAuth: async (
      t: (typeof SEALED_OAUTH_TABLES)[number],
      id: string,
      from: string,
      to: string,
    ) => {
      await db
        .updateTable(t.table)
        .set({ sealed: to })
        .where(t.key, '=', id)
        .where('sealed', '=', from)
        .execute();
    },
    /** Every blob an error mail points at (its sealed report, POP3's kept raw mail). */
    errorMailBlobs: async (): Promise<Set<string>> => {
      const keys = new Set<string>();
      for (const r of await db.selectFrom('error_mails').select(['report_blob', 'raw_blob']).execute()) {
        keys.add(r.report_blob);
        if (r.raw_blob) keys.add(r.raw_blob);
      }
      return keys;
    },
    repointErrorMailBlob: async (tx: Tx, from: string, to: string) => {
      await tx.updateTable('error_mails').set({ report_blob: to }).where('report_blob', '=', from).execute();
      await tx.updateTable('error_mails').set({ raw_blob: to }).where('raw_blob', '=', from).execute();
    },
  };
}
