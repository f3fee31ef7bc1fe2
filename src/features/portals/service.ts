import { MailintakeError } from '../../kernel/errors.js';
import { resolveAttachmentPolicy } from '../../mail/attachment-checks.js';
import { mergePortalMailSettings } from '../../mail/portal-mail.js';
import type { Store } from '../../store/db.js';
import { systemLog } from '../../store/system-log.js';
import { withTransaction } from '../../store/tx.js';
import { createPortalRepo, portalView, storedAttachmentPolicy, storedMailSettings } from './repo.js';
import type { PortalView } from './views.js';

export interface PortalsService {
  list(): Promise<PortalView[]>;
  /** Creates a portal (name: letters, digits, dot, hyphen, underscore). */
  add(name: string): Promise<PortalView>;
  /** The reference's switch: headerThreading false → only `##id##` in the subject threads mails. */
  /**
   * `attachmentPolicy`: fields to change (mail/attachment-checks.ts); `null` for a field restores its
   * default. `mailSettings` (mail/portal-mail.ts): form senders, CC participants, acknowledgement, rate limit;
   * groups are merged field by field, `null` restores a field's or a group's default.
   * INVALID_SETTINGS names every bad field (`mailSettings.acknowledgement.subject`); nothing is saved then.
   */
  update(name: string, patch: PortalPatch): Promise<PortalView>;
}

export interface PortalPatch {
  headerThreading?: boolean;
  attachmentPolicy?: Record<string, unknown>;
  mailSettings?: Record<string, unknown>;
}

const PORTAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Portals: the help desks mail is taken into, each with its threading switch and attachment policy. */
export function createPortalsService(deps: { store: Store }): PortalsService {
  const { store } = deps;
  const repo = createPortalRepo(store);
  const existing = async (name: string) => {
    const row = await repo.byName(name);
    if (!row) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
    return row;
  };
  return {
    list: async () => (await repo.list()).map(portalView),
    add: async (name) => {
      if (!PORTAL_NAME.test(name)) {
        throw new MailintakeError('INVALID_SETTINGS', 'invalid portal name', {
          details: {
            fields: [{ field: 'name', message: 'letters, digits, dot, hyphen, underscore; up to 100' }],
          },
        });
      }
      if (await repo.byName(name))
        throw new MailintakeError('CONFLICT', `a portal named "${name}" exists already`);
      await withTransaction(store, async (tx) => {
        await repo.insert(tx, name);
        await systemLog(tx, {
          level: 'info',
          category: 'settings-changed',
          message: `portal ${name} added`,
          details: { portal: name, change: 'added' },
        });
      });
      return portalView(await existing(name));
    },
    update: async (name, patch) => {
      const current = await existing(name);
      const set: { header_threading?: number; attachment_policy?: string; mail_settings?: string } = {};
      if (patch.headerThreading !== undefined) set.header_threading = patch.headerThreading ? 1 : 0;
      if (patch.attachmentPolicy !== undefined) {
        // Field by field over what the admin set before; null restores a field's default. Only the fields
        // set are stored, so a later change of a default reaches every portal that did not override it.
        const merged: Record<string, unknown> = {
          ...storedAttachmentPolicy(current.attachment_policy, current.id),
          ...patch.attachmentPolicy,
        };
        for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
        resolveAttachmentPolicy(merged); // INVALID_SETTINGS naming every bad field; nothing saved
        set.attachment_policy = JSON.stringify(merged);
      }
      if (patch.mailSettings !== undefined) {
        set.mail_settings = JSON.stringify(
          mergePortalMailSettings(storedMailSettings(current.mail_settings, current.id), patch.mailSettings),
        );
      }
      if (Object.keys(set).length > 0) {
        await withTransaction(store, async (tx) => {
          await repo.update(tx, name, set);
          await systemLog(tx, {
            level: 'info',
            category: 'settings-changed',
            message: `portal ${name} updated`,
            details: {
              portal: name,
              change: 'updated',
              ...(patch.headerThreading !== undefined ? { headerThreading: patch.headerThreading } : {}),
              ...(patch.attachmentPolicy !== undefined ? { attachmentPolicy: patch.attachmentPolicy } : {}),
              ...(patch.mailSettings !== undefined ? { mailSettings: patch.mailSettings } : {}),
            },
          });
        });
      }
      return portalView(await existing(name));
    },
  };
}
