import { createRoute, z } from '@hono/zod-openapi';
import { MailintakeError } from '../../kernel/errors.js';
import { alertPatchSchema } from '../../notify/alert-settings.js';
import { ruleInputSchema } from '../../notify/rules.js';
import { smtpInputSchema } from '../../notify/smtp-settings.js';
import { pageOf } from '../shared/page.js';
import {
  type Api,
  bodyDoc,
  errors,
  idParams,
  inputJsonSchema,
  ok,
  pageQuery,
  parse,
  queryOf,
  readJson,
  rememberSecrets,
} from '../shared/route-kit.js';
import type { NotificationServices } from './service.js';
import {
  connectionAlertsSchema,
  markedCountSchema,
  notificationRuleViewSchema,
  notificationViewSchema,
  outboxMailViewSchema,
  outboxStatusSchema,
  smtpSettingsViewSchema,
  smtpTestResultSchema,
  unreadCountSchema,
} from './views.js';

/** Bell notifications, notification rules, the outgoing SMTP server, connection alerts and the outbox. */

const notificationsQuery = queryOf({
  unread: z
    .enum(['true', 'false'], 'must be true or false')
    .optional()
    .openapi({ param: { description: 'true: only those not marked read' } }),
  ...pageQuery,
});
// fields: the services validate (rules, SMTP, alerts name every bad field)
const settingsBody = z.record(z.string(), z.unknown(), 'must be a JSON object');
const smtpTestBody = z.strictObject({ to: z.string().min(1).max(320) });

export const listNotifications = createRoute({
  method: 'get',
  path: '/api/v1/notifications',
  summary: 'Bell notifications for admins, newest first',
  request: { query: notificationsQuery },
  responses: { 200: ok('A page of notifications', pageOf(notificationViewSchema)), ...errors(400, 401) },
});
export const unreadCount = createRoute({
  method: 'get',
  path: '/api/v1/notifications/unread-count',
  summary: 'How many bell notifications are unread',
  responses: { 200: ok('The count', unreadCountSchema), ...errors(401) },
});
export const markRead = createRoute({
  method: 'post',
  path: '/api/v1/notifications/{id}/read',
  summary: 'Mark a notification read (a read one keeps its first read time)',
  request: { params: idParams('notification') },
  responses: { 200: ok('The notification', notificationViewSchema), ...errors(400, 401, 404) },
});
export const markAllRead = createRoute({
  method: 'post',
  path: '/api/v1/notifications/read-all',
  summary: 'Mark every unread notification read',
  responses: { 200: ok('How many were marked', markedCountSchema), ...errors(401) },
});
export const listRules = createRoute({
  method: 'get',
  path: '/api/v1/notification-rules',
  summary: 'Notification rules: who gets an email for which event',
  responses: { 200: ok('The rules', z.array(notificationRuleViewSchema)), ...errors(401) },
});
export const setRule = createRoute({
  method: 'put',
  path: '/api/v1/notification-rules',
  summary: 'Create or replace the rule for an event and portal (no portal: every portal)',
  description:
    'An event’s recipients in a portal are those of its enabled rule for that portal plus those of its enabled ' +
    'rule for every portal, each address once. Bell notifications go to admins whatever the rules say.',
  request: { body: bodyDoc({ $ref: '#/components/schemas/NotificationRuleInput' }) },
  responses: { 200: ok('The rule', notificationRuleViewSchema), ...errors(400, 401) },
});
export const enableRule = createRoute({
  method: 'post',
  path: '/api/v1/notification-rules/{id}/enable',
  summary: 'Enable a notification rule',
  request: { params: idParams('notification rule') },
  responses: { 200: ok('The rule', notificationRuleViewSchema), ...errors(400, 401, 404) },
});
export const disableRule = createRoute({
  method: 'post',
  path: '/api/v1/notification-rules/{id}/disable',
  summary: 'Disable a notification rule (its recipients get no more email for the event)',
  request: { params: idParams('notification rule') },
  responses: { 200: ok('The rule', notificationRuleViewSchema), ...errors(400, 401, 404) },
});
export const getSmtp = createRoute({
  method: 'get',
  path: '/api/v1/settings/smtp',
  summary: 'The outgoing SMTP server for notification mail (never the password)',
  responses: { 200: ok('The settings', smtpSettingsViewSchema), ...errors(401, 404) },
});
export const setSmtp = createRoute({
  method: 'put',
  path: '/api/v1/settings/smtp',
  summary: 'Set the outgoing SMTP server',
  request: { body: bodyDoc({ $ref: '#/components/schemas/SmtpInput' }) },
  responses: { 200: ok('The settings', smtpSettingsViewSchema), ...errors(400, 401) },
});
export const testSmtp = createRoute({
  method: 'post',
  path: '/api/v1/settings/smtp/test',
  summary: 'Send a test mail through the stored SMTP settings now',
  description:
    'Answers 502 with a connection code (DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, TIMEOUT) when ' +
    'the SMTP server cannot be reached or refuses the login, or SEND_FAILED when it refuses the mail; 404 ' +
    'when no SMTP server is configured.',
  request: { body: bodyDoc(smtpTestBody) },
  responses: { 200: ok('Sent', smtpTestResultSchema), ...errors(400, 401, 404, 502) },
});
export const getAlerts = createRoute({
  method: 'get',
  path: '/api/v1/settings/connection-alerts',
  summary: 'Connection-failure notifications: threshold and switch',
  responses: { 200: ok('The settings', connectionAlertsSchema), ...errors(401) },
});
export const setAlerts = createRoute({
  method: 'patch',
  path: '/api/v1/settings/connection-alerts',
  summary: 'Change the threshold and/or switch notifications on or off',
  request: { body: bodyDoc(alertPatchSchema) },
  responses: { 200: ok('The settings', connectionAlertsSchema), ...errors(400, 401) },
});
export const outboxStatus = createRoute({
  method: 'get',
  path: '/api/v1/outbox',
  summary: 'Notification mail not sent yet (pending, retrying, given up) and how many were sent',
  responses: { 200: ok('The outbox', outboxStatusSchema), ...errors(401) },
});
export const retryOutboxMail = createRoute({
  method: 'post',
  path: '/api/v1/outbox/{id}/retry',
  summary: 'Put a given-up notification mail back in line',
  request: { params: idParams('outbox mail') },
  responses: { 200: ok('The mail', outboxMailViewSchema), ...errors(400, 401, 404, 409) },
});

export function mountNotificationRoutes(app: Api, services: NotificationServices): void {
  app.openAPIRegistry.registerComponent('schemas', 'NotificationRuleInput', inputJsonSchema(ruleInputSchema));
  app.openAPIRegistry.registerComponent('schemas', 'SmtpInput', smtpInputDoc());
  mountBell(app, services);
  app.openapi(listRules, async (c) => c.json(await services.notificationRules.list(), 200));
  app.openapi(setRule, async (c) =>
    c.json(await services.notificationRules.set(parse(settingsBody, await readJson(c))), 200),
  );
  app.openapi(enableRule, async (c) =>
    c.json(await services.notificationRules.setEnabled(c.req.valid('param').id, true), 200),
  );
  app.openapi(disableRule, async (c) =>
    c.json(await services.notificationRules.setEnabled(c.req.valid('param').id, false), 200),
  );
  mountSmtp(app, services);
  app.openapi(getAlerts, async (c) => c.json(await services.alerts.get(), 200));
  app.openapi(setAlerts, async (c) =>
    c.json(await services.alerts.set(parse(settingsBody, await readJson(c))), 200),
  );
  app.openapi(outboxStatus, async (c) => c.json(await services.outbox.status(), 200));
  app.openapi(retryOutboxMail, async (c) =>
    c.json(await services.outbox.retry(c.req.valid('param').id), 200),
  );
}

function mountBell(app: Api, services: NotificationServices): void {
  app.openapi(listNotifications, async (c) => {
    const { unread, ...q } = c.req.valid('query');
    return c.json(await services.notifications.list({ ...q, unread: unread === 'true' }), 200);
  });
  app.openapi(unreadCount, async (c) => c.json(await services.notifications.unreadCount(), 200));
  app.openapi(markAllRead, async (c) => c.json(await services.notifications.markAllRead(), 200));
  app.openapi(markRead, async (c) =>
    c.json(await services.notifications.markRead(c.req.valid('param').id), 200),
  );
}

function mountSmtp(app: Api, services: NotificationServices): void {
  app.openapi(getSmtp, async (c) => {
    const smtp = await services.smtp.get();
    if (!smtp) throw new MailintakeError('NOT_FOUND', 'no outgoing SMTP server is configured');
    return c.json(smtp, 200);
  });
  app.openapi(setSmtp, async (c) => {
    const body = await readJson(c);
    rememberSecrets(c, body);
    return c.json(await services.smtp.set(parse(settingsBody, body)), 200);
  });
  app.openapi(testSmtp, async (c) =>
    c.json(await services.smtp.test(parse(smtpTestBody, await readJson(c))), 200),
  );
}

/** The SMTP input as JSON Schema, generated from the zod schema that validates it; the password write-only. */
function smtpInputDoc(): Record<string, unknown> {
  type Json = Record<string, unknown>;
  const doc = inputJsonSchema(smtpInputSchema);
  const props = doc.properties as Record<string, Json>;
  if (props.password) {
    props.password.writeOnly = true;
    props.password.description =
      'Sealed at rest; never returned. Left out: the stored one is kept when the username stays the same.';
  }
  if (props.secure) props.secure.description = 'TLS from the first byte (implicit TLS, port 465)';
  if (props.starttls)
    props.starttls.description =
      'Without secure: require STARTTLS (default); false only for a server without TLS';
  return doc;
}
