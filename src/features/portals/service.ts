import { z } from 'zod';
import { MailintakeError } from '../../kernel/errors.js';
import { resolveAttachmentPolicy } from '../../mail/attachment-checks.js';
import { mergePortalMailSettings } from '../../mail/portal-mail.js';
import type { SmtpServers, SmtpSettingsView } from '../../notify/smtp-settings.js';
import { type SmtpTestResult, sendTestMail } from '../../notify/smtp-test-mail.js';
import { validated } from '../../notify/validate.js';
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
  /**
   * The portal's own outgoing SMTP server: the portal's replies, forwards and acknowledgements go out through it
   * when it is set, else through the instance's (`mailintake smtp`). Same fields and checks as the instance's.
   */
  smtp: {
    get(name: string): Promise<PortalSmtpView>;
    /** Validates (every bad field named), seals the password; a missing password keeps the stored one. */
    set(name: string, input: unknown): Promise<PortalSmtpView>;
    /** Removes the portal's own server: its mail goes through the instance's again. */
    clear(name: string): Promise<PortalSmtpView>;
    /** A test mail through the server the portal's replies use now (its own, else the instance's). */
    test(name: string, q: { to: string }): Promise<SmtpTestResult & { through: 'portal' | 'instance' }>;
  };
}

/** Which server a portal's mail goes out through, and the portal's own settings (never a password). */
export interface PortalSmtpView {
  portal: string;
  /** 'portal': its own server; 'instance': the instance's; 'none': neither is set, so its replies wait. */
  inEffect: 'portal' | 'instance' | 'none';
  /** The portal's own server; null when it has none. */
  own: SmtpSettingsView | null;
}

export interface PortalPatch {
  headerThreading?: boolean;
  attachmentPolicy?: Record<string, unknown>;
  mailSettings?: Record<string, unknown>;
}

const PORTAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** A portal's id and name by its name; NOT_FOUND names the portal. */
export async function portalNamed(store: Store, name: string): Promise<{ id: number; name: string }> {
  const row = await createPortalRepo(store).byName(name);
  if (!row) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
  return { id: row.id, name: row.name };
}

const testSchema = z.strictObject({ to: z.email('must be a valid email address') });

/** Portals: the help desks mail is taken into, each with its threading switch and attachment policy. */
export function createPortalsService(deps: {
  store: Store;
  /** The outgoing servers (a portal's own, and the instance's it falls back to). */
  smtp: SmtpServers;
  /** Mail that waited for a server goes out now. */
  kickOutbox: () => void;
}): PortalsService {
  const { store } = deps;
  const repo = createPortalRepo(store);
  const existing = async (name: string) => {
    const row = await repo.byName(name);
    if (!row) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
    return row;
  };
  const smtpView = async (name: string): Promise<PortalSmtpView> => {
    const portal = await portalNamed(store, name);
    const own = await deps.smtp.portal(portal).get();
    const inEffect = own ? 'portal' : (await deps.smtp.instance.get()) ? 'instance' : 'none';
    return { portal: portal.name, inEffect, own };
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
    smtp: {
      get: smtpView,
      set: async (name, input) => {
        await deps.smtp.portal(await portalNamed(store, name)).set(input);
        deps.kickOutbox();
        return smtpView(name);
      },
      clear: async (name) => {
        if (await deps.smtp.portal(await portalNamed(store, name)).clear()) deps.kickOutbox();
        return smtpView(name);
      },
      test: async (name, q) => {
        const { to } = validated(testSchema, q, 'test mail');
        const portal = await portalNamed(store, name);
        const own = await deps.smtp.portal(portal).config();
        const config = own ?? (await deps.smtp.instance.config());
        if (!config) {
          throw new MailintakeError(
            'NOT_FOUND',
            `portal ${portal.name} has no outgoing SMTP server of its own and the instance has none (mailintake portal smtp set ${portal.name} --file smtp.json, or mailintake smtp set --file smtp.json)`,
          );
        }
        const result = await sendTestMail(
          config,
          to,
          own
            ? `The replies, forwards and acknowledgements of portal ${portal.name} go out the same way (its own server).`
            : `Portal ${portal.name} has no server of its own: its replies, forwards and acknowledgements go out the same way, through the instance's server.`,
        );
        return { ...result, through: own ? ('portal' as const) : ('instance' as const) };
      },
    },
  };
}
