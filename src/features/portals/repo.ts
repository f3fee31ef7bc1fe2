import { z } from 'zod';
import { resolveAttachmentPolicy } from '../../mail/attachment-checks.js';
import { resolvePortalMailSettings } from '../../mail/portal-mail.js';
import { nowIso, type Store } from '../../store/db.js';
import { parseStored } from '../../store/stored-json.js';
import type { Tx } from '../../store/tx.js';
import type { PortalView } from './views.js';

/**
 * A portal's attachment policy as stored: only the fields an admin set (the rest follow the defaults), checked
 * field by field by resolveAttachmentPolicy when read.
 */
const storedPolicySchema = z.record(z.string(), z.unknown());

export interface PortalRow {
  id: number;
  name: string;
  header_threading: number;
  attachment_policy: string;
  mail_settings: string;
}

/** The fields an admin set on a portal's attachment policy (mailboxes' rows carry their portal's column too). */
export function storedAttachmentPolicy(value: string, id: number): Record<string, unknown> {
  return parseStored(storedPolicySchema, value, { table: 'portals', column: 'attachment_policy', id });
}

/** The fields an admin set on a portal's mail settings (mail/portal-mail.ts). */
export function storedMailSettings(value: string, id: number): Record<string, unknown> {
  return parseStored(storedPolicySchema, value, { table: 'portals', column: 'mail_settings', id });
}

export function portalView(r: PortalRow): PortalView {
  return {
    id: r.id,
    name: r.name,
    headerThreading: r.header_threading === 1,
    attachmentPolicy: resolveAttachmentPolicy(storedAttachmentPolicy(r.attachment_policy, r.id)),
    mailSettings: resolvePortalMailSettings(storedMailSettings(r.mail_settings, r.id)),
  };
}

/** The portals table: every query the portals feature makes. */
export function createPortalRepo(store: Store) {
  return {
    list: () => store.db.selectFrom('portals').selectAll().orderBy('id').execute(),
    byName: (name: string) =>
      store.db.selectFrom('portals').selectAll().where('name', '=', name).executeTakeFirst(),
    insert: (tx: Tx, name: string) =>
      tx.insertInto('portals').values({ name, header_threading: 1, created_at: nowIso() }).execute(),
    update: (
      tx: Tx,
      name: string,
      set: { header_threading?: number; attachment_policy?: string; mail_settings?: string },
    ) => tx.updateTable('portals').set(set).where('name', '=', name).execute(),
    /** Every store has the portal "default" (mailboxes that name none belong to it). */
    ensureDefault: async (): Promise<void> => {
      await store.db
        .insertInto('portals')
        .values({ name: 'default', header_threading: 1, created_at: nowIso() })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    },
  };
}

export type PortalRepo = ReturnType<typeof createPortalRepo>;
