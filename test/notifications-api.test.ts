import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { createApi } from '../src/http/app.js';
import { loadConfig } from '../src/kernel/env.js';
import { checkResponses, type ResponseChecks } from './support/openapi-check.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The notification routes over HTTP (in-process, `app.request()`): bell notifications, rules, the outgoing SMTP
 * server with its test mail against a real SMTP server on loopback, connection alerts and the outbox. Every
 * answer is checked for the SMTP password at the end.
 */

const SMTP_PASSWORD = 'Smtp-Api-Secret-77';

let dataDir: string;
let rt: Runtime;
let app: ReturnType<typeof createApi>;
/** Every answer is checked against the route's declared status and schema. */
let checks: ResponseChecks;
let key: string;
let smtpServer: SmtpTestServer;
const bodies: string[] = [];
const logged: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-notify-api-'));
  rt = await openRuntime(loadConfig({ MAILINTAKE_DATA_DIR: dataDir, MAILINTAKE_LOG_LEVEL: 'silent' }));
  key = (await rt.services.apiKeys.create('notify-test')).key;
  app = createApi(rt.services, {
    logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
  });
  checks = checkResponses(app);
  smtpServer = await startSmtpServer({
    tls: 'starttls',
    auth: { username: 'mailer', password: SMTP_PASSWORD },
  });
});

afterAll(async () => {
  await rt?.close();
  await smtpServer?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the matchers, not by types
type AnyJson = any;

async function call(
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; text: string; json: () => AnyJson }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await app.request(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, text, json: () => JSON.parse(text) };
}

const fieldsOf = (json: AnyJson) => (json.details.fields as { field: string }[]).map((f) => f.field).sort();

const smtpBody = (extra: Record<string, unknown> = {}) => ({
  host: '127.0.0.1',
  port: smtpServer.port,
  username: 'mailer',
  password: SMTP_PASSWORD,
  from: 'Help Desk <helpdesk@example.test>',
  caFile: smtpServer.caFile,
  ...extra,
});

describe('outgoing SMTP server', () => {
  it('answers 404 before one is set, and 400 naming every bad field', async () => {
    expect((await call('GET', '/api/v1/settings/smtp')).status).toBe(404);
    const test = await call('POST', '/api/v1/settings/smtp/test', { to: 'someone@example.test' });
    expect(test.status).toBe(404);
    expect(test.json().message).toContain('no outgoing SMTP server is configured');

    const bad = await call('PUT', '/api/v1/settings/smtp', {
      host: 'smtp://mail.example.test',
      port: 70000,
      secure: 'yes',
      password: SMTP_PASSWORD,
      from: 'not an address',
      surprise: 1,
    });
    expect(bad.status).toBe(400);
    expect(bad.json().error).toBe('INVALID_SETTINGS');
    expect(fieldsOf(bad.json())).toEqual(['(file)', 'from', 'host', 'password', 'port', 'secure']);
    expect(bad.text).not.toContain(SMTP_PASSWORD);
  });

  it('stores the settings without ever returning the password, and keeps it when left out', async () => {
    const set = await call('PUT', '/api/v1/settings/smtp', smtpBody());
    expect(set.status).toBe(200);
    expect(set.json()).toEqual({
      host: '127.0.0.1',
      port: smtpServer.port,
      secure: false,
      starttls: true,
      username: 'mailer',
      passwordSet: true,
      from: 'Help Desk <helpdesk@example.test>',
      caFile: smtpServer.caFile,
      auth: 'password',
      oauth: null,
      warnings: [],
    });
    const { password: _password, ...withoutPassword } = smtpBody();
    const kept = await call('PUT', '/api/v1/settings/smtp', withoutPassword);
    expect(kept.json().passwordSet).toBe(true);
    // another user name needs its own password
    const other = await call('PUT', '/api/v1/settings/smtp', {
      ...withoutPassword,
      username: 'someone-else',
    });
    expect(other.status).toBe(400);
    expect(fieldsOf(other.json())).toEqual(['password']);
    expect((await call('GET', '/api/v1/settings/smtp')).json()).toMatchObject({
      username: 'mailer',
      passwordSet: true,
    });

    const log = await rt.services.systemLog.list({ category: 'notification-settings' });
    expect(log.items[0]).toMatchObject({ actor: 'api-key:notify-test' });
    expect(log.items[0]!.message).toContain(
      `outgoing SMTP server set to 127.0.0.1:${smtpServer.port} (STARTTLS)`,
    );
    expect(JSON.stringify(log.items)).not.toContain(SMTP_PASSWORD);
  });

  it('sends a test mail through the stored settings (STARTTLS, AUTH PLAIN)', async () => {
    const res = await call('POST', '/api/v1/settings/smtp/test', { to: 'admin@example.test' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, to: 'admin@example.test' });
    expect(res.json().response).toMatch(/^250 /);
    const [mail] = await smtpServer.waitFor(1);
    expect(mail).toMatchObject({ secure: true, user: 'mailer', from: 'helpdesk@example.test' });
    expect(mail!.to).toEqual(['admin@example.test']);
    expect(mail!.parsed.subject).toBe('Mailintake test mail');
    expect(mail!.parsed.text).toContain(`through 127.0.0.1:${smtpServer.port} (STARTTLS)`);
  });

  it('says why a test mail failed: refused recipient, wrong password, server down', async () => {
    smtpServer.refuseRecipients({ code: 550, message: 'No such user' });
    const refused = await call('POST', '/api/v1/settings/smtp/test', { to: 'ghost@example.test' });
    smtpServer.refuseRecipients(null);
    expect(refused.status).toBe(502);
    expect(refused.json()).toMatchObject({
      error: 'SEND_FAILED',
      details: { serverResponse: '550 No such user' },
    });

    await call('PUT', '/api/v1/settings/smtp', smtpBody({ password: 'Wrong-Password-1' }));
    const login = await call('POST', '/api/v1/settings/smtp/test', { to: 'admin@example.test' });
    expect(login.status).toBe(502);
    expect(login.json().error).toBe('AUTH_FAILED');
    expect(login.text).not.toContain('Wrong-Password-1');
    await call('PUT', '/api/v1/settings/smtp', smtpBody());

    await smtpServer.stop();
    try {
      const down = await call('POST', '/api/v1/settings/smtp/test', { to: 'admin@example.test' });
      expect(down.status).toBe(502);
      expect(down.json().error).toBe('CONNECT_FAILED');
    } finally {
      await smtpServer.start();
    }
    const badTo = await call('POST', '/api/v1/settings/smtp/test', { to: 'nobody' });
    expect(badTo.status).toBe(400);
    expect(fieldsOf(badTo.json())).toEqual(['to']);
  });
});

describe('notification rules', () => {
  it('creates, replaces, lists, disables and enables rules; bad input names every field', async () => {
    const bad = await call('PUT', '/api/v1/notification-rules', {
      event: 'printer-on-fire',
      recipients: ['ok@example.test', 'not-an-address'],
      enabled: 'sometimes',
    });
    expect(bad.status).toBe(400);
    expect(fieldsOf(bad.json())).toEqual(['enabled', 'event', 'recipients']);
    const noPortal = await call('PUT', '/api/v1/notification-rules', {
      event: 'mail-error',
      portal: 'no-such-portal',
      recipients: ['a@example.test'],
    });
    expect(noPortal.status).toBe(400);
    expect(fieldsOf(noPortal.json())).toEqual(['portal']);

    const created = await call('PUT', '/api/v1/notification-rules', {
      event: 'connection-failure',
      recipients: ['Tech@Example.test', 'tech@example.test', 'lead@example.test'],
    });
    expect(created.status).toBe(200);
    expect(created.json()).toMatchObject({
      event: 'connection-failure',
      portal: null,
      recipients: ['tech@example.test', 'lead@example.test'],
      enabled: true,
    });
    const replaced = await call('PUT', '/api/v1/notification-rules', {
      event: 'connection-failure',
      recipients: ['oncall@example.test'],
    });
    expect(replaced.json()).toMatchObject({ id: created.json().id, recipients: ['oncall@example.test'] });
    const perPortal = await call('PUT', '/api/v1/notification-rules', {
      event: 'connection-failure',
      portal: 'default',
      recipients: ['default-team@example.test'],
    });
    expect(perPortal.json()).toMatchObject({ portal: 'default' });
    const list = await call('GET', '/api/v1/notification-rules');
    expect(list.json().map((r: AnyJson) => [r.event, r.portal, r.recipients])).toEqual([
      ['connection-failure', null, ['oncall@example.test']],
      ['connection-failure', 'default', ['default-team@example.test']],
    ]);

    const id = perPortal.json().id;
    expect((await call('POST', `/api/v1/notification-rules/${id}/disable`)).json().enabled).toBe(false);
    expect((await call('POST', `/api/v1/notification-rules/${id}/enable`)).json().enabled).toBe(true);
    expect((await call('POST', '/api/v1/notification-rules/99999/enable')).status).toBe(404);
    expect((await call('POST', '/api/v1/notification-rules/abc/enable')).status).toBe(400);
  });
});

describe('connection alerts, bell notifications and the outbox', () => {
  it('reads and changes the alert settings; bad values name every field', async () => {
    expect((await call('GET', '/api/v1/settings/connection-alerts')).json()).toEqual({
      threshold: 5,
      enabled: true,
    });
    const bad = await call('PATCH', '/api/v1/settings/connection-alerts', { threshold: 0, enabled: 'no' });
    expect(bad.status).toBe(400);
    expect(fieldsOf(bad.json())).toEqual(['enabled', 'threshold']);
    expect((await call('PATCH', '/api/v1/settings/connection-alerts', {})).status).toBe(400);
    const set = await call('PATCH', '/api/v1/settings/connection-alerts', { threshold: 1 });
    expect(set.json()).toEqual({ threshold: 1, enabled: true });
  });

  it('a mailbox that cannot be reached raises a bell notification and an email; both are listed and can be read', async () => {
    await rt.services.mailboxes.add({
      name: 'down',
      protocol: 'imap',
      server: '127.0.0.1',
      port: 1, // nothing listens: CONNECT_FAILED
      starttls: false,
      username: 'x',
      password: 'not-the-smtp-one',
      emailAddress: 'down@example.test',
    });
    const mailsBefore = smtpServer.mails.length;
    const fetch = await call('POST', '/api/v1/fetch', { mailbox: 'down' });
    expect(fetch.json()[0]).toMatchObject({ reached: false, error: { code: 'CONNECT_FAILED' } });

    expect((await call('GET', '/api/v1/notifications/unread-count')).json()).toEqual({ unread: 1 });
    const unread = await call('GET', '/api/v1/notifications?unread=true');
    expect(unread.json()).toMatchObject({ total: 1, limit: 50, offset: 0 });
    const n = unread.json().items[0];
    expect(n).toMatchObject({
      event: 'connection-failure',
      mailbox: 'down',
      portal: 'default',
      title: 'Mailbox down cannot connect: 1 failed round in a row',
      readAt: null,
    });
    // the rules above: the every-portal rule and the default portal's
    const [mail] = (await smtpServer.waitFor(mailsBefore + 1)).slice(mailsBefore);
    expect(mail!.to).toEqual(['oncall@example.test', 'default-team@example.test']);
    expect(mail!.parsed.subject).toBe(n.title);

    const read = await call('POST', `/api/v1/notifications/${n.id}/read`);
    expect(read.json().readAt).not.toBeNull();
    expect((await call('GET', '/api/v1/notifications?unread=true')).json().total).toBe(0);
    expect((await call('GET', '/api/v1/notifications')).json().total).toBe(1);
    expect((await call('POST', '/api/v1/notifications/read-all')).json()).toEqual({ marked: 0 });
    expect((await call('POST', '/api/v1/notifications/99999/read')).status).toBe(404);
    expect((await call('GET', '/api/v1/notifications?unread=maybe')).status).toBe(400);
  });

  it('shows the outbox; only a given-up mail can be retried', async () => {
    const status = await call('GET', '/api/v1/outbox');
    expect(status.status).toBe(200);
    expect(status.json()).toMatchObject({ smtpConfigured: true, failed: 0 });
    expect(status.json().sent + status.json().pending + status.json().retrying).toBe(1);
    expect((await call('POST', '/api/v1/outbox/99999/retry')).status).toBe(404);
  });
});

describe('secrets', () => {
  it('never returned the SMTP password, nor logged it', () => {
    expect(bodies.length).toBeGreaterThan(20);
    for (const b of bodies) expect(b).not.toContain(SMTP_PASSWORD);
    for (const l of logged) expect(l).not.toContain(SMTP_PASSWORD);
  });
});

describe('answers match their declaration (test/support/openapi-check.ts)', () => {
  it('every answer had a declared status and a body that fits its schema', () => {
    expect(checks.violations).toEqual([]);
    expect(checks.checked).toBe(bodies.length);
  });
});
