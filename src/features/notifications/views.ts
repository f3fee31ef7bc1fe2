import { z } from '@hono/zod-openapi';
import { NOTIFICATION_EVENTS } from '../../notify/notifier.js';
import { timestamp } from '../shared/page.js';

/**
 * What the API shows of notifications: the bell, rules, the outgoing SMTP server, connection alerts, the outbox.
 * The TypeScript types of these views are declared where they are made (notifications/service.ts, notify/); the
 * routes' typed handlers check that what the services return fits these schemas.
 */

const eventSchema = z.enum(NOTIFICATION_EVENTS);

export const notificationViewSchema = z
  .object({
    id: z.number().int(),
    event: eventSchema,
    portal: z.string().nullable(),
    mailbox: z.string().nullable(),
    title: z.string(),
    body: z.string(),
    createdAt: timestamp(),
    readAt: z.string().nullable(),
    link: z
      .string()
      .nullable()
      .openapi({ description: 'The console page it speaks of, a path (prefix MAILINTAKE_PUBLIC_URL)' }),
  })
  .openapi('Notification');

export const unreadCountSchema = z.object({ unread: z.number().int() });
export const markedCountSchema = z.object({ marked: z.number().int() });

export const notificationRuleViewSchema = z
  .object({
    id: z.number().int(),
    event: eventSchema,
    portal: z.string().nullable().openapi({ description: 'null: every portal' }),
    recipients: z.array(z.string()),
    enabled: z.boolean(),
    createdAt: timestamp(),
    updatedAt: timestamp(),
  })
  .openapi('NotificationRule');

export const smtpSettingsViewSchema = z
  .object({
    host: z.string(),
    port: z.number().int(),
    secure: z.boolean(),
    starttls: z.boolean(),
    username: z.string().nullable(),
    passwordSet: z.boolean().openapi({ description: 'A password is stored; it is never returned.' }),
    from: z.string(),
    caFile: z.string().nullable(),
    auth: z.enum(['password', 'oauth2', 'none']),
    oauth: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'OAuth settings (XOAUTH2); the client secret only as clientSecretSet' }),
    warnings: z.array(z.string()),
  })
  .openapi('SmtpSettings');

export const smtpTestResultSchema = z.object({
  ok: z.literal(true),
  to: z.string(),
  response: z.string().openapi({ description: 'The SMTP server’s final answer' }),
  durationMs: z.number().int(),
});

export const connectionAlertsSchema = z
  .object({
    threshold: z
      .number()
      .int()
      .min(1)
      .openapi({ description: 'Consecutive rounds that could not connect before the notice (default 5)' }),
    enabled: z.boolean().openapi({ description: 'Notifications on (default)' }),
  })
  .openapi('ConnectionAlerts');

export const outboxMailViewSchema = z
  .object({
    id: z.number().int(),
    event: z.string().openapi({ enum: [...NOTIFICATION_EVENTS] }),
    recipients: z.array(z.string()),
    subject: z.string(),
    createdAt: timestamp(),
    attempts: z.number().int(),
    state: z.enum(['pending', 'retrying', 'failed', 'sent']),
    nextAttemptAt: z.string().nullable(),
    sentAt: z.string().nullable(),
    failedAt: z.string().nullable().openapi({ description: 'when sending was given up' }),
    lastError: z.string().nullable(),
  })
  .openapi('OutboxMail');

export const outboxStatusSchema = z
  .object({
    smtpConfigured: z.boolean().openapi({
      description:
        "The instance's outgoing server is set. Without it, notifications and the replies of portals without a " +
        'server of their own wait; a portal with its own server sends regardless.',
    }),
    pending: z.number().int(),
    retrying: z.number().int(),
    failed: z.number().int(),
    sent: z.number().int(),
    unsent: z.array(outboxMailViewSchema),
  })
  .openapi('OutboxStatus');
