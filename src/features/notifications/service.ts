import { z } from 'zod';
import { MailintakeError } from '../../kernel/errors.js';
import { type AlertSettings, readAlertSettings, updateAlertSettings } from '../../notify/alert-settings.js';
import { bellPath } from '../../notify/links.js';
import type { NotificationEvent } from '../../notify/notifier.js';
import {
  type OutboxMailView,
  type OutboxSender,
  type OutboxStatus,
  outboxStatus,
  retryOutboxMail,
} from '../../notify/outbox.js';
import { NotificationRules, type NotificationRuleView } from '../../notify/rules.js';
import type { SmtpSettings, SmtpSettingsView } from '../../notify/smtp-settings.js';
import { type SmtpTestResult, sendTestMail } from '../../notify/smtp-test-mail.js';
import { validated } from '../../notify/validate.js';
import type { Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import type { Page } from '../shared/page.js';
import { createNotificationRepo, type NotificationRow } from './repo.js';

/** A bell notification, as admins see it. */
export interface NotificationView {
  id: number;
  event: NotificationEvent;
  portal: string | null;
  mailbox: string | null;
  title: string;
  body: string;
  createdAt: string;
  readAt: string | null;
  /** The console page it speaks of (a path: MAILINTAKE_PUBLIC_URL + this opens it); null when none. */
  link: string | null;
}

export type { SmtpTestResult };

/** The notification part of the Services interface (features/services.ts): bell, rules, SMTP, alerts, outbox. */
export interface NotificationServices {
  notifications: {
    /** Newest first; `unread`: only those not marked read. */
    list(q: { unread?: boolean; limit?: number; offset?: number }): Promise<Page<NotificationView>>;
    unreadCount(): Promise<{ unread: number }>;
    /** NOT_FOUND for an unknown id; marking a read one again keeps its first read time. */
    markRead(id: number): Promise<NotificationView>;
    markAllRead(): Promise<{ marked: number }>;
  };
  notificationRules: {
    list(): Promise<NotificationRuleView[]>;
    /** Creates or replaces the rule for `event` and `portal` (absent/null: every portal). */
    set(input: unknown): Promise<NotificationRuleView>;
    setEnabled(id: number, enabled: boolean): Promise<NotificationRuleView>;
  };
  smtp: {
    /** null while no outgoing SMTP server is configured. Never the password. */
    get(): Promise<SmtpSettingsView | null>;
    /** Validates (every bad field named), seals the password; a missing password keeps the stored one. */
    set(input: unknown): Promise<SmtpSettingsView>;
    /** Sends a test mail through the stored settings now (not through the outbox). */
    test(q: { to: string }): Promise<SmtpTestResult>;
  };
  alerts: {
    get(): Promise<AlertSettings>;
    /** `{ threshold?, enabled? }`; INVALID_SETTINGS names every bad field. */
    set(patch: unknown): Promise<AlertSettings>;
  };
  outbox: {
    status(): Promise<OutboxStatus>;
    /** Puts a given-up mail back in line and wakes the sender. */
    retry(id: number): Promise<OutboxMailView>;
  };
}

const testSchema = z.strictObject({ to: z.email('must be a valid email address') });

/** The bell, notification rules, the outgoing SMTP server, connection alerts and the outbox. */
export function createNotificationServices(deps: {
  store: Store;
  smtp: SmtpSettings;
  sender: OutboxSender;
}): NotificationServices {
  const { store, smtp, sender } = deps;
  const rules = new NotificationRules(store);
  const repo = createNotificationRepo(store);

  return {
    notifications: {
      list: async (q) => fetchPage(repo.list(q), page(q.limit, q.offset), view),
      unreadCount: async () => ({ unread: await repo.unreadCount() }),
      markRead: async (id) => {
        await repo.markRead(id);
        const row = await repo.byId(id);
        if (!row) throw new MailintakeError('NOT_FOUND', `no notification with id ${id}`);
        return view(row);
      },
      markAllRead: async () => ({ marked: await repo.markAllRead() }),
    },
    notificationRules: {
      list: () => rules.list(),
      set: (input) => rules.set(input),
      setEnabled: (id, enabled) => rules.setEnabled(id, enabled),
    },
    smtp: {
      get: () => smtp.get(),
      set: async (input) => {
        const view = await smtp.set(input);
        sender.kick(); // mail that waited for a server goes out now
        return view;
      },
      test: async (q) => {
        const { to } = validated(testSchema, q, 'test mail');
        const config = await smtp.config();
        if (!config) {
          throw new MailintakeError(
            'NOT_FOUND',
            'no outgoing SMTP server is configured (mailintake smtp set --file smtp.json)',
          );
        }
        return sendTestMail(
          config,
          to,
          'Notification mail (connection failures, dropped attachments, error mails) goes out the same way, and the replies of every portal without an outgoing server of its own.',
        );
      },
    },
    alerts: {
      get: () => readAlertSettings(store.db),
      set: (patch) => updateAlertSettings(store, patch),
    },
    outbox: {
      status: async () => outboxStatus(store, (await smtp.get()) !== null),
      retry: async (id) => {
        const mail = await retryOutboxMail(store, id);
        sender.kick();
        return mail;
      },
    },
  };
}

function view(r: NotificationRow): NotificationView {
  return {
    id: r.id,
    event: r.event as NotificationEvent,
    portal: r.portal_name,
    mailbox: r.mailbox_name,
    title: r.title,
    body: r.body,
    createdAt: r.created_at,
    readAt: r.read_at,
    link: bellPath(r.event as NotificationEvent, r.mailbox_name),
  };
}
