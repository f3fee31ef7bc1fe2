import { z } from 'zod';
import { SQL_IN_LIST_MAX } from '../kernel/limits.js';
import { type PortalMailSettings, resolvePortalMailSettings } from '../mail/portal-mail.js';
import { parseStored } from '../store/stored-json.js';
import type { Tx } from '../store/tx.js';

/** What a batch needs to know of its portal and of us to decide requesters, participants and acknowledgements. */
export interface PortalFacts {
  settings: PortalMailSettings;
  /** Every address and alias of every mailbox we read (lower-cased): never a requester's CC, never mailed back. */
  own: ReadonlySet<string>;
  /** The batch's From addresses that belong to an enabled user of this portal (or of every portal). */
  users: ReadonlySet<string>;
}

const storedObject = z.record(z.string(), z.unknown());
/** Only the addresses of a mailbox's stored settings (connectors/settings.ts validates the rest). */
const mailboxAddresses = z.looseObject({ emailAddress: z.array(z.string()).optional() });

/**
 * Read in the batch's transaction, once per batch: settings saved meanwhile apply from the next batch on, and
 * a mailbox added in another portal counts as ours at once (a mail to it is never a stranger's).
 */
export async function loadPortalFacts(
  tx: Tx,
  portalId: number,
  /** The batch's From addresses, lower-cased: which of them are users. */
  senders: readonly string[],
): Promise<PortalFacts> {
  const portal = await tx
    .selectFrom('portals')
    .select(['id', 'mail_settings'])
    .where('id', '=', portalId)
    .executeTakeFirst();
  const stored = portal
    ? parseStored(storedObject, portal.mail_settings, {
        table: 'portals',
        column: 'mail_settings',
        id: portal.id,
      })
    : {};
  const settings = resolvePortalMailSettings(stored);
  const own = new Set<string>();
  for (const row of await tx.selectFrom('mailboxes').select(['id', 'settings']).execute()) {
    const s = parseStored(mailboxAddresses, row.settings, {
      table: 'mailboxes',
      column: 'settings',
      id: row.id,
    });
    for (const a of s.emailAddress ?? []) own.add(a.toLowerCase());
  }
  const froms = [...new Set(senders)];
  const users = new Set<string>();
  const people = tx.withTables<{
    users: { email: string; portal_id: number | null; disabled_at: string | null };
  }>();
  for (let i = 0; i < froms.length; i += SQL_IN_LIST_MAX) {
    const rows = await people
      .selectFrom('users')
      .select('email')
      .where('email', 'in', froms.slice(i, i + SQL_IN_LIST_MAX))
      .where('disabled_at', 'is', null)
      .where((eb) => eb.or([eb('portal_id', 'is', null), eb('portal_id', '=', portalId)]))
      .execute();
    for (const r of rows) users.add(r.email.toLowerCase());
  }
  return { settings, own, users };
}
