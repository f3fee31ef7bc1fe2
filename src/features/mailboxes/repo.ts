import type { Selectable } from 'kysely';
import {
  type MailboxAuth,
  type MailboxSettings,
  type StoredSettings,
  storedMailboxSettings,
  storedMailboxSettingsWithSecrets,
} from '../../connectors/settings.js';
import type { IntakeMailbox } from '../../intake/commit-mail.js';
import type { ScheduledRow } from '../../intake/watchers.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { SecretBox } from '../../kernel/secret-box.js';
import { resolveAttachmentPolicy } from '../../mail/attachment-checks.js';
import { nowIso, type Store } from '../../store/db.js';
import type { MailboxTable } from '../../store/schema.js';
import { parseStored } from '../../store/stored-json.js';
import type { Tx } from '../../store/tx.js';
import { storedAttachmentPolicy } from '../portals/repo.js';

/** A mailbox row with its portal's columns and its open error mails. */
export type MailboxRow = Selectable<MailboxTable> & {
  portal_name: string;
  header_threading: number;
  attachment_policy: string;
  /** Its error mails not moved back to the inbox (the reference's "total number of mails in error folder"). */
  error_mails_open: number | string | null;
};

export type { StoredSettings } from '../../connectors/settings.js';

/** A mailbox row's settings without secrets, decoded by connectors/settings.ts (the one decoder). */
export function storedSettings(row: {
  id: number;
  settings: string;
}): StoredSettings & { auth: MailboxAuth } {
  return storedMailboxSettings(row, parseStored);
}

/** A mailbox row's full settings, secrets opened: what a connector gets. */
export function settingsOf(
  box: SecretBox,
  row: { id: number; settings: string; secrets: string },
): MailboxSettings {
  return storedMailboxSettingsWithSecrets(box, row, parseStored);
}

/** The mailbox as a fetch round sees it; the portal's attachment policy is read with it, once per round. */
export function intakeMailbox(row: MailboxRow): IntakeMailbox {
  return {
    id: row.id,
    name: row.name,
    portalId: row.portal_id,
    headerThreading: row.header_threading === 1,
    enabled: row.enabled === 1,
    attachmentPolicy: resolveAttachmentPolicy(storedAttachmentPolicy(row.attachment_policy, row.portal_id)),
  };
}

/** The mailbox as the schedule and the IDLE watchers see it at each tick. */
export function scheduledRow(box: SecretBox, row: MailboxRow): ScheduledRow {
  const s = storedSettings(row);
  return {
    id: row.id,
    name: row.name,
    enabled: row.enabled === 1,
    protocol: row.protocol,
    idle: s.idle ?? true,
    intervalSeconds: s.intervalSeconds,
    // the sealed secret is re-sealed (new nonce) on every update, so a changed password changes the key too
    key: `${row.settings}\n${row.secrets}`,
    settings: () => settingsOf(box, row),
  };
}

/** The stored form of validated settings: the secrets sealed apart from the rest. */
export function mailboxColumns(box: SecretBox, settings: MailboxSettings, portalId: number) {
  const { password, accessToken, enabled, oauth, ...rest } = settings;
  const { clientSecret, ...oauthPlain } = oauth ?? { clientSecret: undefined };
  return {
    name: settings.name,
    portal_id: portalId,
    protocol: settings.protocol,
    enabled: enabled ? 1 : 0,
    settings: JSON.stringify(oauth ? { ...rest, oauth: oauthPlain } : rest),
    secrets: box.seal(
      JSON.stringify({
        password,
        ...(accessToken !== undefined ? { accessToken } : {}),
        ...(clientSecret !== undefined ? { oauthClientSecret: clientSecret } : {}),
      }),
    ),
  };
}

type MailboxColumns = ReturnType<typeof mailboxColumns>;

/** The mailboxes table: every query of the mailboxes feature. */
export function createMailboxRepo(store: Store) {
  const select = () =>
    store.db
      .selectFrom('mailboxes')
      .innerJoin('portals', 'portals.id', 'mailboxes.portal_id')
      .selectAll('mailboxes')
      .select(['portals.name as portal_name', 'portals.header_threading', 'portals.attachment_policy'])
      .select((eb) =>
        eb
          .selectFrom('error_mails')
          .select((e) => e.fn.countAll<number>().as('n'))
          .whereRef('error_mails.mailbox_id', '=', 'mailboxes.id')
          .where('error_mails.status', '=', 'in-error-folder')
          .as('error_mails_open'),
      )
      .where('mailboxes.removed_at', 'is', null);
  return {
    /** Every mailbox not removed, by name. */
    rows: (): Promise<MailboxRow[]> => select().orderBy('mailboxes.name').execute(),
    /** NOT_FOUND when there is no such mailbox (removed ones included). */
    row: async (name: string): Promise<MailboxRow> => {
      const row = await select().where('mailboxes.name', '=', name).executeTakeFirst();
      if (!row) throw new MailintakeError('NOT_FOUND', `no mailbox named "${name}"`);
      return row;
    },
    byId: (id: number): Promise<MailboxRow | undefined> =>
      select().where('mailboxes.id', '=', id).executeTakeFirst(),
    portalId: async (name: string): Promise<number | undefined> =>
      (await store.db.selectFrom('portals').select('id').where('name', '=', name).executeTakeFirst())?.id,
    /** Any row by that name, removed ones included (their names are never reused). */
    nameTaken: async (name: string): Promise<boolean> =>
      (await store.db.selectFrom('mailboxes').select('id').where('name', '=', name).executeTakeFirst()) !==
      undefined,
    insert: (tx: Tx, columns: MailboxColumns, disabledReason: string | null, now: string) =>
      tx
        .insertInto('mailboxes')
        .values({
          ...columns,
          disabled_reason: disabledReason,
          created_at: now,
          updated_at: now,
          consecutive_failures: 0,
        })
        .execute(),
    update: (tx: Tx, id: number, columns: MailboxColumns, enabled: boolean, disabledReason: string | null) =>
      tx
        .updateTable('mailboxes')
        .set({ ...columns, enabled: enabled ? 1 : 0, disabled_reason: disabledReason, updated_at: nowIso() })
        .where('id', '=', id)
        .execute(),
    setEnabled: (tx: Tx, id: number, enabled: boolean) =>
      tx
        .updateTable('mailboxes')
        .set({ enabled: enabled ? 1 : 0, disabled_reason: enabled ? null : 'admin', updated_at: nowIso() })
        .where('id', '=', id)
        .execute(),
    /**
     * Turns the row into its tombstone unless a round holds its lease; false when it did not (removed meanwhile,
     * or being fetched: `removedAt` tells which).
     */
    tombstone: async (tx: Tx, id: number, keptAs: string, wipedSecrets: string): Promise<boolean> => {
      const now = nowIso();
      const res = await tx
        .updateTable('mailboxes')
        .set({
          name: keptAs,
          enabled: 0,
          disabled_reason: 'removed',
          removed_at: now,
          updated_at: now,
          secrets: wipedSecrets,
          lease_owner: null,
          lease_until: null,
        })
        .where('id', '=', id)
        .where('removed_at', 'is', null)
        .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_until', '<', now)]))
        .executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    },
    /** Requests and conversations each mailbox brought in, by mailbox id (the console's list shows them). */
    activity: async (): Promise<Map<number, { requests: number; conversations: number }>> => {
      const [requests, conversations] = await Promise.all([
        store.db
          .selectFrom('requests')
          .select((eb) => ['mailbox_id', eb.fn.countAll<number | string>().as('n')])
          .where('mailbox_id', 'is not', null)
          .groupBy('mailbox_id')
          .execute(),
        store.db
          .selectFrom('conversations')
          .select((eb) => ['mailbox_id', eb.fn.countAll<number | string>().as('n')])
          .where('mailbox_id', 'is not', null)
          .groupBy('mailbox_id')
          .execute(),
      ]);
      const out = new Map<number, { requests: number; conversations: number }>();
      const at = (id: number) => out.get(id) ?? out.set(id, { requests: 0, conversations: 0 }).get(id)!;
      for (const r of requests) at(Number(r.mailbox_id)).requests = Number(r.n);
      for (const r of conversations) at(Number(r.mailbox_id)).conversations = Number(r.n);
      return out;
    },
    removedAt: async (tx: Tx, id: number): Promise<string | null | undefined> =>
      (await tx.selectFrom('mailboxes').select('removed_at').where('id', '=', id).executeTakeFirst())
        ?.removed_at,
  };
}

export type MailboxRepo = ReturnType<typeof createMailboxRepo>;

/**
 * Mailboxes with their settings opened (secrets included): by name (NOT_FOUND when unknown) or by id
 * (undefined when removed). What the OAuth consent needs (oauth/service.ts OAuthMailboxes).
 */
export function openedMailboxes(repo: MailboxRepo, box: SecretBox) {
  return {
    named: async (name: string) => {
      const row = await repo.row(name);
      return { id: row.id, settings: settingsOf(box, row) };
    },
    byId: async (id: number) => {
      const row = await repo.byId(id);
      return row ? { id: row.id, settings: settingsOf(box, row) } : undefined;
    },
  };
}
