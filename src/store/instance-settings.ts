import { z } from 'zod';
import { nowIso } from './db.js';
import { parseStored } from './stored-json.js';
import type { Tx } from './tx.js';

/**
 * Instance-wide settings (the reference's "instance based" rows): one JSON value per key. Read and written in
 * the caller's transaction, so a setting read while recording an event is the one in force when it commits.
 * Each key's shape and validation live with the feature that owns it (notify/smtp-settings.ts,
 * notify/alert-settings.ts); this module only stores JSON.
 */
export type InstanceSettingKey = 'smtp' | 'connection-alerts' | (string & {});

/** The stored value, or undefined when the key was never set. */
export async function readSetting(tx: Tx, key: InstanceSettingKey): Promise<unknown> {
  const row = await tx
    .selectFrom('instance_settings')
    .select('value')
    .where('key', '=', key)
    .executeTakeFirst();
  // the feature that owns the key checks the shape (notify/smtp-settings.ts, notify/alert-settings.ts)
  return row
    ? parseStored(z.unknown(), row.value, { table: 'instance_settings', column: 'value', id: key })
    : undefined;
}

export async function writeSetting(tx: Tx, key: InstanceSettingKey, value: unknown): Promise<void> {
  const now = nowIso();
  const text = JSON.stringify(value);
  await tx
    .insertInto('instance_settings')
    .values({ key, value: text, updated_at: now })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: text, updated_at: now }))
    .execute();
}

export async function deleteSetting(tx: Tx, key: InstanceSettingKey): Promise<void> {
  await tx.deleteFrom('instance_settings').where('key', '=', key).execute();
}
